//! Writing result tables (scores, retrieved lists) as CSV or Parquet, by extension, atomically.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Result};
use arrow_array::{ArrayRef, Float32Array, RecordBatch, StringArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema as ArrowSchema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::fsutil::write_atomic_with;

/// One column of an output table.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// Text (raw ids).
    Str(Vec<String>),
    /// Numbers.
    F32(Vec<f32>),
    /// Counts and ranks.
    U32(Vec<u32>),
}

impl Column {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Column::Str(v) => v.len(),
            Column::F32(v) => v.len(),
            Column::U32(v) => v.len(),
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn cell(&self, r: usize) -> String {
        match self {
            Column::Str(v) => v[r].clone(),
            Column::F32(v) => v[r].to_string(),
            Column::U32(v) => v[r].to_string(),
        }
    }
}

/// The output format of `path` by its extension, in any case (`csv` or `parquet`), as the
/// readers take `.CSV` too.
fn output_format(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    ["csv", "parquet"].into_iter().find(|f| *f == ext)
}

/// Fails unless `path` ends in `.csv` or `.parquet` (in any case), naming it: checked before
/// long work.
pub fn check_output_path(path: &Path) -> Result<()> {
    match output_format(path) {
        Some(_) => Ok(()),
        _ => bail!(
            "{}: the output must end in .csv or .parquet",
            path.display()
        ),
    }
}

/// Writes named columns of equal length to `path`: Parquet when it ends in `.parquet`, CSV
/// (header row) when it ends in `.csv`.
pub fn write_table(path: &Path, columns: &[(&str, Column)]) -> Result<()> {
    let n = columns.first().map_or(0, |c| c.1.len());
    if let Some((name, c)) = columns.iter().find(|c| c.1.len() != n) {
        bail!("column `{name}` has {} rows, expected {n}", c.len());
    }
    match output_format(path) {
        Some("csv") => write_atomic_with(path, |f| {
            let mut w = csv::Writer::from_writer(std::io::BufWriter::new(f));
            w.write_record(columns.iter().map(|c| c.0))?;
            let mut row = Vec::with_capacity(columns.len());
            for r in 0..n {
                row.clear();
                row.extend(columns.iter().map(|c| c.1.cell(r)));
                w.write_record(&row)?;
            }
            w.flush()?;
            Ok(())
        }),
        Some("parquet") => {
            let fields: Vec<Field> = columns
                .iter()
                .map(|(name, c)| {
                    let t = match c {
                        Column::Str(_) => DataType::Utf8,
                        Column::F32(_) => DataType::Float32,
                        Column::U32(_) => DataType::UInt32,
                    };
                    Field::new(*name, t, false)
                })
                .collect();
            let schema = Arc::new(ArrowSchema::new(fields));
            let arrays: Vec<ArrayRef> = columns
                .iter()
                .map(|(_, c)| -> ArrayRef {
                    match c {
                        Column::Str(v) => Arc::new(StringArray::from_iter_values(v)),
                        Column::F32(v) => Arc::new(Float32Array::from(v.clone())),
                        Column::U32(v) => Arc::new(UInt32Array::from(v.clone())),
                    }
                })
                .collect();
            let batch = RecordBatch::try_new(schema.clone(), arrays)?;
            write_atomic_with(path, |f| {
                let props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .build();
                let mut w = ArrowWriter::try_new(f, schema, Some(props))?;
                w.write(&batch)?;
                w.close()?;
                Ok(())
            })
        }
        _ => bail!(
            "{}: the output must end in .csv or .parquet",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_a_header_and_one_line_per_row() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        write_table(
            &p,
            &[
                ("id", Column::Str(vec!["a".into(), "b,c".into()])),
                ("x", Column::F32(vec![0.5, 1.0])),
                ("n", Column::U32(vec![1, 2])),
            ],
        )
        .unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text, "id,x,n\na,0.5,1\n\"b,c\",1,2\n");
        assert!(write_table(&dir.path().join("t.txt"), &[]).is_err());
        let bad = write_table(
            &p,
            &[("a", Column::U32(vec![1])), ("b", Column::U32(vec![]))],
        );
        assert!(bad.unwrap_err().to_string().contains("`b`"));
    }
}
