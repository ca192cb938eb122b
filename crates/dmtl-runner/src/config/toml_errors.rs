//! TOML parse errors in the words of a run configuration: the dotted key they are about and
//! the line, with serde's Rust type names said in words.
//!
//! The key is the path `serde_path_to_error` tracked down to the failing value: the unknown or
//! the mistyped key, or the table missing a field (which the message names). A table
//! deserialized from buffered content (the teacher's flattened body keys, a tagged objective)
//! is tracked down to the table, its message naming the key.

use serde::de::DeserializeOwned;
use serde_path_to_error::{Path, Segment};

use super::error::ConfigError;

/// A TOML deserialization error with the path to the value it is about.
pub type TomlError = serde_path_to_error::Error<toml::de::Error>;

/// Deserializes the TOML `text` (read from `origin`); an error is a [`ConfigError`] naming the
/// key and the line.
pub fn from_toml_str<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text))
        .map_err(|e| config_error(&e, text, origin))
}

/// The [`ConfigError`] of a TOML deserialization error of `text` (read from `origin`).
pub fn config_error(e: &TomlError, text: &str, origin: &str) -> ConfigError {
    let inner = e.inner();
    let at = inner
        .span()
        .map(|s| format!(" (at {})", line_col(text, s.start)))
        .unwrap_or_default();
    ConfigError::new(
        origin,
        dotted(e.path()),
        plain_type_names(inner.message().trim_end()) + &at,
    )
}

/// The dotted key of a tracked path (`student.train.lr`, `stages.models[2]`), up to its first
/// segment of unknown name; empty for the whole file.
fn dotted(path: &Path) -> String {
    let mut key = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Map { key: name } | Segment::Enum { variant: name } => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(name);
            }
            Segment::Unknown => break,
        }
    }
    key
}

/// serde's Rust type names in a message, in words.
fn plain_type_names(message: &str) -> String {
    message
        .replace("expected usize", "expected an integer >= 0")
        .replace("expected u64", "expected an integer >= 0")
        .replace("expected u32", "expected an integer >= 0")
        .replace("expected f32", "expected a number")
        .replace("expected f64", "expected a number")
}

fn line_col(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("line {line}, column {col}")
}
