//! TOML parse errors in the words of a run configuration: the dotted key they are about and
//! the line, with serde's Rust type names said in words.

use super::error::ConfigError;

/// The [`ConfigError`] of a TOML deserialization error of `text` (read from `origin`).
pub fn config_error(e: &toml::de::Error, text: &str, origin: &str) -> ConfigError {
    let mut key = toml_error_key(e);
    if key.is_empty() {
        key = e
            .span()
            .and_then(|s| key_at(text, s.start))
            .unwrap_or_default();
    }
    let at = e
        .span()
        .map(|s| format!(" (at {})", line_col(text, s.start)))
        .unwrap_or_default();
    ConfigError::new(origin, key, plain_type_names(e.message().trim_end()) + &at)
}

/// The key a TOML deserialization error is about, when its message names one.
fn toml_error_key(e: &toml::de::Error) -> String {
    let m = e.message();
    if let Some(i) = m.find("unknown field `") {
        let rest = &m[i + "unknown field `".len()..];
        if let Some(end) = rest.find('`') {
            return rest[..end].to_string();
        }
    }
    if let Some(i) = m.find("missing field `") {
        let rest = &m[i + "missing field `".len()..];
        if let Some(end) = rest.find('`') {
            return rest[..end].to_string();
        }
    }
    String::new()
}

/// The dotted key assigned on the line holding `offset` (`student.train.batch_size` for
/// `batch_size = -1` under `[student.train]`): serde's type errors ("invalid value: integer
/// `-1`, expected usize") carry a position but not the key.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let (lhs, _) = text[start..end].split_once('=')?;
    let name = lhs.trim().trim_matches('"');
    if name.is_empty() || name.starts_with('[') {
        return None;
    }
    let section = text[..start].lines().rev().find_map(|l| {
        let l = l.trim();
        l.starts_with('[')
            .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
    });
    Some(match section {
        Some(sec) if !sec.is_empty() => format!("{sec}.{name}"),
        _ => name.to_string(),
    })
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
