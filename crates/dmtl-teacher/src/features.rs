//! Field embeddings: the input layer shared by the teacher and the student's towers, defined
//! in `dmtl-train` ([`dmtl_train::features`]) and re-exported here under their old path.

pub use dmtl_train::features::{EmbeddedField, FieldEmbeddingConfig, FieldEmbeddings};
