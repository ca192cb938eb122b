//! Vocabularies: the map from raw tokens to embedding-table rows, built from training rows only.
//!
//! Index 0 of every table is reserved for "unknown": a token unseen in training (or dropped by
//! `min_count`/`max_size`) and an empty categorical cell map to 0. Real tokens get 1, 2, ... in a
//! deterministic order: by training count, most frequent first, ties by token text. A hashed
//! column (`hash_buckets = B > 0`) maps a non-empty token to `1 + hash(token) % B` with a fixed
//! hash (FNV-1a 64, finalised by a SplitMix64 mix), stable across runs and machines.

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::error::{DataError, Result};
use crate::raw::{RawLog, StrColumn};
use crate::schema::{Kind, Schema};
use crate::vocab_count::{column_tokens, ranked_vocabulary};

/// The index every unknown, rare or empty token maps to.
pub const OOV: u32 = 0;

/// Version of the vocabulary file format.
const FORMAT_VERSION: u32 = 1;

/// How a column's tokens become indices.
#[derive(Debug, Clone, PartialEq)]
enum Mapping {
    /// A list of tokens; token `tokens[i]` has index `i + 1`.
    Tokens {
        tokens: Vec<String>,
        index: HashMap<String, u32>,
    },
    /// Hashing into `buckets` buckets (indices 1..=buckets).
    Hashed { buckets: u64 },
}

/// The vocabulary of one categorical or multi-hot column.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocabulary {
    column: String,
    kind: Kind,
    mapping: Mapping,
}

/// The stable hash of a token (FNV-1a 64 with a SplitMix64 finaliser for well-spread low bits).
pub fn token_hash(token: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in token.as_bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

impl Vocabulary {
    /// A vocabulary of the given tokens, in index order (`tokens[0]` gets index 1).
    ///
    /// Fails when a token repeats or is empty.
    pub fn from_tokens(column: &str, kind: Kind, tokens: Vec<String>) -> Result<Vocabulary> {
        let mut index = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            if t.is_empty() || index.insert(t.clone(), i as u32 + 1).is_some() {
                return Err(DataError::Vocab {
                    origin: column.to_string(),
                    message: format!("token {t:?} is empty or repeats"),
                });
            }
        }
        Ok(Vocabulary {
            column: column.to_string(),
            kind,
            mapping: Mapping::Tokens { tokens, index },
        })
    }

    /// A hashed vocabulary of `buckets` buckets.
    pub fn hashed(column: &str, kind: Kind, buckets: u64) -> Vocabulary {
        Vocabulary {
            column: column.to_string(),
            kind,
            mapping: Mapping::Hashed { buckets },
        }
    }

    /// The column this vocabulary belongs to.
    pub fn column(&self) -> &str {
        &self.column
    }

    /// The column's kind (categorical or multi-hot).
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The embedding table size: number of real tokens (or buckets) plus one for OOV.
    pub fn len(&self) -> usize {
        match &self.mapping {
            Mapping::Tokens { tokens, .. } => tokens.len() + 1,
            Mapping::Hashed { buckets } => *buckets as usize + 1,
        }
    }

    /// Never true: the OOV row always exists.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The number of hash buckets, if the column is hashed.
    pub fn hash_buckets(&self) -> Option<u64> {
        match self.mapping {
            Mapping::Hashed { buckets } => Some(buckets),
            Mapping::Tokens { .. } => None,
        }
    }

    /// The index of `token`: [`OOV`] (0) when empty or unknown.
    pub fn index(&self, token: &str) -> u32 {
        if token.is_empty() {
            return OOV;
        }
        match &self.mapping {
            Mapping::Tokens { index, .. } => index.get(token).copied().unwrap_or(OOV),
            Mapping::Hashed { buckets } => 1 + (token_hash(token) % buckets) as u32,
        }
    }

    /// The token at `index` (`None` for OOV, out-of-range or hashed indices).
    pub fn token(&self, index: u32) -> Option<&str> {
        match &self.mapping {
            Mapping::Tokens { tokens, .. } if index >= 1 => {
                tokens.get(index as usize - 1).map(String::as_str)
            }
            _ => None,
        }
    }

    /// The real tokens in index order (empty when hashed).
    pub fn tokens(&self) -> &[String] {
        match &self.mapping {
            Mapping::Tokens { tokens, .. } => tokens,
            Mapping::Hashed { .. } => &[],
        }
    }
}

/// Vocabularies of every categorical and multi-hot feature column of a schema, in schema order.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocabularies {
    vocabs: Vec<Vocabulary>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VocabFile {
    format: u32,
    columns: Vec<VocabEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VocabEntry {
    name: String,
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hash_buckets: Option<u64>,
    #[serde(default)]
    tokens: Vec<String>,
}

impl Vocabularies {
    /// Builds the vocabularies from `train` (which must hold every categorical and multi-hot
    /// feature column), honouring each column's `min_count`, `max_size` and `hash_buckets`.
    /// Columns are counted in parallel.
    pub fn build(schema: &Schema, train: &RawLog) -> Result<Vocabularies> {
        let specs: Vec<_> = schema
            .columns
            .iter()
            .filter(|c| c.kind != Kind::Dense)
            .collect();
        let vocabs = specs
            .par_iter()
            .map(|spec| -> Result<Vocabulary> {
                if let Some(b) = spec.hashing() {
                    return Ok(Vocabulary::hashed(&spec.name, spec.kind, b));
                }
                let all: &StrColumn = column_tokens(spec, train)?;
                let mut counts: HashMap<&str, u64> = HashMap::new();
                for t in all.iter().filter(|t| !t.is_empty()) {
                    *counts.entry(t).or_insert(0) += 1;
                }
                ranked_vocabulary(spec, counts, &train.source)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Vocabularies { vocabs })
    }

    /// Assembles vocabularies from parts (in schema order of the non-dense columns).
    pub fn from_vec(vocabs: Vec<Vocabulary>) -> Vocabularies {
        Vocabularies { vocabs }
    }

    /// The vocabulary of column `name` (`None` for dense or unknown columns).
    pub fn get(&self, name: &str) -> Option<&Vocabulary> {
        self.vocabs.iter().find(|v| v.column == name)
    }

    /// The embedding table size of column `name` (OOV row included).
    pub fn table_size(&self, name: &str) -> Option<usize> {
        self.get(name).map(Vocabulary::len)
    }

    /// All vocabularies, in schema order.
    pub fn iter(&self) -> impl Iterator<Item = &Vocabulary> + '_ {
        self.vocabs.iter()
    }

    /// Number of vocabularies (categorical plus multi-hot columns).
    pub fn len(&self) -> usize {
        self.vocabs.len()
    }

    /// True when the schema has no categorical or multi-hot column.
    pub fn is_empty(&self) -> bool {
        self.vocabs.is_empty()
    }

    /// The vocabularies as JSON text.
    pub fn to_json(&self) -> String {
        let file = VocabFile {
            format: FORMAT_VERSION,
            columns: self
                .vocabs
                .iter()
                .map(|v| VocabEntry {
                    name: v.column.clone(),
                    kind: v.kind.as_str().to_string(),
                    hash_buckets: v.hash_buckets(),
                    tokens: v.tokens().to_vec(),
                })
                .collect(),
        };
        serde_json::to_string(&file).expect("vocabularies always serialize")
    }

    /// Parses vocabularies from JSON text; `origin` names the source in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Vocabularies> {
        let err = |message: String| DataError::Vocab {
            origin: origin.to_string(),
            message,
        };
        let file: VocabFile =
            serde_json::from_str(text).map_err(|e| err(format!("not a vocabulary file: {e}")))?;
        if file.format != FORMAT_VERSION {
            return Err(err(format!(
                "format version {} is not supported (expected {FORMAT_VERSION})",
                file.format
            )));
        }
        let mut vocabs = Vec::with_capacity(file.columns.len());
        for e in file.columns {
            let kind = match e.kind.as_str() {
                "categorical" => Kind::Categorical,
                "multi_hot" => Kind::MultiHot,
                k => return Err(err(format!("column `{}`: unknown kind {k:?}", e.name))),
            };
            vocabs.push(match e.hash_buckets {
                Some(b) if b > 0 => Vocabulary::hashed(&e.name, kind, b),
                _ => Vocabulary::from_tokens(&e.name, kind, e.tokens)
                    .map_err(|x| err(format!("column `{}`: {x}", e.name)))?,
            });
        }
        Ok(Vocabularies { vocabs })
    }

    /// Writes the vocabularies as JSON, atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let json = self.to_json();
        write_atomic(path.as_ref(), |w| {
            use std::io::Write;
            w.write_all(json.as_bytes())
        })
    }

    /// Reads vocabularies written by [`Vocabularies::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Vocabularies> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        Vocabularies::from_json(&text, &path.display().to_string())
    }

    /// Checks that these vocabularies fit `schema`: one per categorical or multi-hot column, in
    /// schema order, of the same kind and hashing. Run it after loading vocabularies saved beside
    /// a model, before scoring.
    pub fn check_against(&self, schema: &Schema) -> Result<()> {
        let err = |message: String| {
            Err(DataError::Vocab {
                origin: "check against schema".to_string(),
                message,
            })
        };
        let specs: Vec<_> = schema
            .columns
            .iter()
            .filter(|c| c.kind != Kind::Dense)
            .collect();
        for spec in &specs {
            let Some(v) = self.get(&spec.name) else {
                return err(format!(
                    "no vocabulary for the schema's {} column `{}`",
                    spec.kind, spec.name
                ));
            };
            if v.kind != spec.kind {
                return err(format!(
                    "column `{}`: vocabulary is {}, schema says {}",
                    spec.name, v.kind, spec.kind
                ));
            }
            if v.hash_buckets() != spec.hashing() {
                return err(format!(
                    "column `{}`: vocabulary hashing {:?} differs from the schema's hash_buckets {:?}",
                    spec.name,
                    v.hash_buckets(),
                    spec.hashing()
                ));
            }
        }
        if let Some(extra) = self
            .vocabs
            .iter()
            .find(|v| schema.column(&v.column).is_none())
        {
            return err(format!(
                "vocabulary of `{}`, a column the schema does not have",
                extra.column
            ));
        }
        let order: Vec<&str> = self.vocabs.iter().map(|v| v.column.as_str()).collect();
        let want: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        if order != want {
            return err(format!(
                "columns in order {order:?}, the schema has {want:?}"
            ));
        }
        Ok(())
    }
}
