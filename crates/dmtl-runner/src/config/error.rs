//! The one error of a run configuration: the file, the dotted key and what is wrong.

use std::fmt;

/// A configuration error: the file (or `<demo>`), the key and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The configuration file.
    pub origin: String,
    /// The offending key, dotted (`student.train.lr`); empty for a syntax error.
    pub key: String,
    /// What was expected.
    pub message: String,
}

impl ConfigError {
    /// The error of `key` (dotted, empty for the whole file) in the configuration `origin`.
    pub fn new(origin: &str, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            origin: origin.to_string(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// The error of `key` of the section `section` (`teacher`, `student`): a library's
    /// validation names its keys within its own section, the run configuration under it.
    pub fn in_section(
        origin: &str,
        section: &str,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::new(origin, format!("{section}.{key}"), message)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: `{}`: {}", self.origin, self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}
