//! Vocabularies counted chunk by chunk: [`VocabCounter`] takes the training rows of a log one
//! chunk at a time (as a [`crate::LogReader`] gives them) and builds the same
//! [`Vocabularies`] as [`Vocabularies::build`] on those rows read whole, holding only one
//! count per distinct token.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::error::{DataError, Result};
use crate::raw::{RawColumn, RawLog, StrColumn};
use crate::schema::{ColumnSpec, Kind, Schema};
use crate::vocab::{Vocabularies, Vocabulary};

/// The tokens of the column of `spec` in `raw` (every token of a multi-hot column), or an
/// error naming the column when `raw` lacks it or holds it with another kind.
pub(crate) fn column_tokens<'a>(spec: &ColumnSpec, raw: &'a RawLog) -> Result<&'a StrColumn> {
    let col = raw.column(&spec.name).ok_or_else(|| {
        DataError::invalid(
            &raw.source,
            format!(
                "cannot build the vocabulary of `{}`: the log lacks the column",
                spec.name
            ),
        )
    })?;
    match col {
        _ if col.kind() != spec.kind => Err(DataError::invalid(
            &raw.source,
            format!(
                "column `{}` is {} but the schema says {}",
                spec.name,
                col.kind(),
                spec.kind
            ),
        )),
        RawColumn::Categorical(v) => Ok(v),
        RawColumn::MultiHot { tokens, .. } => Ok(tokens),
        RawColumn::Dense(_) => unreachable!("a vocabulary is only built for tokens"),
    }
}

/// The vocabulary of the column of `spec` from the training count of each token: tokens
/// counted at least `min_count` times, most frequent first, ties by token text, the first
/// `max_size` kept. `source` names the log in errors.
pub(crate) fn ranked_vocabulary<'a>(
    spec: &ColumnSpec,
    counts: impl IntoIterator<Item = (&'a str, u64)>,
    source: &str,
) -> Result<Vocabulary> {
    let min_count = spec.min_count.unwrap_or(1);
    let mut kept: Vec<(&str, u64)> = counts
        .into_iter()
        .filter(|&(_, c)| c >= min_count)
        .collect();
    kept.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    if let Some(max) = spec.max_size {
        kept.truncate(max);
    }
    if kept.len() >= u32::MAX as usize {
        return Err(DataError::invalid(
            source,
            format!(
                "column `{}` has too many tokens for u32 ids; set hash_buckets",
                spec.name
            ),
        ));
    }
    let tokens = kept.into_iter().map(|(t, _)| t.to_string()).collect();
    Vocabulary::from_tokens(&spec.name, spec.kind, tokens)
}

/// Token counts of every categorical and multi-hot column, added chunk by chunk; see the
/// module documentation.
#[derive(Debug, Clone)]
pub struct VocabCounter {
    /// The non-dense columns of the schema, in schema order.
    specs: Vec<ColumnSpec>,
    /// Per column of `specs`, the count of each non-empty token (empty for a hashed column).
    counts: Vec<HashMap<String, u64>>,
    /// The first chunk's source, for errors.
    source: String,
    /// Rows counted.
    rows: usize,
}

impl VocabCounter {
    /// A counter for the vocabularies of `schema`, with nothing counted.
    pub fn new(schema: &Schema) -> VocabCounter {
        let specs: Vec<ColumnSpec> = schema
            .columns
            .iter()
            .filter(|c| c.kind != Kind::Dense)
            .cloned()
            .collect();
        VocabCounter {
            counts: vec![HashMap::new(); specs.len()],
            specs,
            source: String::new(),
            rows: 0,
        }
    }

    /// Counts the tokens of every row of `chunk` (columns in parallel).
    ///
    /// Fails, naming the column, when `chunk` lacks a column to count or holds it with another
    /// kind than the schema's.
    pub fn add(&mut self, chunk: &RawLog) -> Result<()> {
        if self.source.is_empty() {
            self.source = chunk.source.clone();
        }
        self.specs
            .par_iter()
            .zip(self.counts.par_iter_mut())
            .filter(|(spec, _)| spec.hashing().is_none())
            .try_for_each(|(spec, counts)| -> Result<()> {
                for t in column_tokens(spec, chunk)?.iter().filter(|t| !t.is_empty()) {
                    match counts.get_mut(t) {
                        Some(c) => *c += 1,
                        None => {
                            counts.insert(t.to_string(), 1);
                        }
                    }
                }
                Ok(())
            })?;
        self.rows += chunk.n_rows;
        Ok(())
    }

    /// Rows counted so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The vocabularies of the rows counted: those [`Vocabularies::build`] gives on the same
    /// rows read whole.
    pub fn finish(self) -> Result<Vocabularies> {
        let source = self.source;
        let vocabs = self
            .specs
            .par_iter()
            .zip(self.counts.par_iter())
            .map(|(spec, counts)| match spec.hashing() {
                Some(b) => Ok(Vocabulary::hashed(&spec.name, spec.kind, b)),
                None => {
                    ranked_vocabulary(spec, counts.iter().map(|(t, &c)| (t.as_str(), c)), &source)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Vocabularies::from_vec(vocabs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{read_csv_from, ReadOptions};

    const SCHEMA: &str = r#"
[labels]
click = "click"
duration = "duration"
[ids]
user = "user"
item = "item"
[[columns]]
name = "user"
side = "user"
kind = "categorical"
[[columns]]
name = "item"
side = "item"
kind = "categorical"
min_count = 2
[[columns]]
name = "tags"
side = "item"
kind = "multi_hot"
separator = "|"
max_size = 3
[[columns]]
name = "city"
side = "user"
kind = "categorical"
hash_buckets = 8
"#;

    fn log(rows: usize) -> RawLog {
        let mut csv = String::from("user,item,tags,city,click,duration\n");
        for r in 0..rows {
            let tags = ["a|b", "", "c", "b|d|e", "a"][(r * 7) % 5];
            csv += &format!(
                "u{},i{},{tags},c{},{},{}\n",
                (r * 31) % 17,
                (r * r) % 23,
                r % 5,
                r % 2,
                (r % 2) * 10
            );
        }
        let schema = Schema::from_toml_str(SCHEMA, "test").unwrap();
        let opts = ReadOptions::default();
        read_csv_from(Box::new(std::io::Cursor::new(csv)), "log", &schema, &opts)
            .unwrap()
            .0
    }

    #[test]
    fn chunks_counted_give_the_vocabularies_of_the_whole() {
        let schema = Schema::from_toml_str(SCHEMA, "test").unwrap();
        let whole = log(500);
        let want = Vocabularies::build(&schema, &whole).unwrap();
        for chunk in [1, 7, 64, 500] {
            let mut counter = VocabCounter::new(&schema);
            for start in (0..whole.n_rows).step_by(chunk) {
                let rows: Vec<usize> = (start..(start + chunk).min(whole.n_rows)).collect();
                counter.add(&whole.take(&rows)).unwrap();
            }
            assert_eq!(counter.rows(), 500);
            assert_eq!(counter.finish().unwrap(), want, "chunks of {chunk}");
        }
        // min_count and max_size did cut something: the test is not vacuous.
        assert!(want.get("tags").unwrap().len() == 4);
        assert!(want.get("item").unwrap().len() < 23 + 1);
    }

    #[test]
    fn a_missing_column_is_named() {
        let schema = Schema::from_toml_str(SCHEMA, "test").unwrap();
        let mut raw = log(10);
        raw.columns.retain(|(n, _)| n != "tags");
        let err = VocabCounter::new(&schema).add(&raw).unwrap_err();
        assert!(err.to_string().contains("`tags`"), "{err}");
    }
}
