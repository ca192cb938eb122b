//! Small views of a raw log's columns and an encoded dataset's rows that every stage and
//! command reads: a categorical column's ids, the first row of each id, the feature columns of
//! some sides, out-of-vocabulary counts.

use anyhow::{bail, Result};
use dmtl_data::{Dataset, FieldData, RawColumn, RawLog, Schema, Side, StrColumn, OOV};

/// The raw ids of a categorical column, or an error naming it.
pub fn categorical<'a>(raw: &'a RawLog, name: &str) -> Result<&'a StrColumn> {
    match raw.column(name) {
        Some(RawColumn::Categorical(v)) => Ok(v),
        Some(_) => bail!("{}: column `{name}` is not categorical", raw.source),
        None => bail!("{}: no column `{name}`", raw.source),
    }
}

/// The first row of each distinct value of the categorical column `name`, in order of first
/// appearance.
pub fn first_rows(raw: &RawLog, name: &str) -> Result<Vec<usize>> {
    let ids = categorical(raw, name)?;
    let mut seen = std::collections::HashSet::new();
    Ok((0..ids.len()).filter(|&r| seen.insert(&ids[r])).collect())
}

/// `raw` with only the feature columns of `sides` and no labels or time.
pub fn keep_sides(raw: &RawLog, schema: &Schema, sides: &[Side]) -> RawLog {
    RawLog {
        source: raw.source.clone(),
        columns: raw
            .columns
            .iter()
            .filter(|(n, _)| schema.column(n).is_some_and(|c| sides.contains(&c.side)))
            .cloned()
            .collect(),
        click: None,
        duration: None,
        time: None,
        n_rows: raw.n_rows,
    }
}

/// How many rows of a categorical column are out of vocabulary.
pub fn oov_count(data: &Dataset, schema: &Schema, column: &str) -> usize {
    match schema.column_index(column).and_then(|i| data.fields.get(i)) {
        Some(FieldData::Ids(v)) => v.iter().filter(|&&x| x == OOV).count(),
        _ => 0,
    }
}

/// `0..n` as row numbers.
pub fn all_rows(n: usize) -> Vec<u32> {
    (0..n as u32).collect()
}
