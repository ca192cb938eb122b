//! Whether `dmtl train` streams the training log (`data.stream`): `"auto"` (the default)
//! streams a log whose files hold more than [`STREAM_AUTO_BYTES`] bytes, `true` always
//! streams, `false` reads the log into memory. docs/performance.md ("Memory as the log
//! grows") says what a streamed run holds.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// With `data.stream = "auto"`, a log (all its part files together) larger than this many
/// bytes on disk is streamed: 32 MiB, about 280,000 rows of CSV (117 bytes a row) or
/// 1,100,000 rows of Parquet (30 bytes a row) of the simulator's columns, which need about
/// 0.3 GB and 1 GB read into memory (docs/performance.md, "Memory as the log grows").
pub const STREAM_AUTO_BYTES: u64 = 32 << 20;

/// The `data.stream` key: `"auto"`, `true` or `false`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StreamMode {
    /// Stream when the log is larger than [`STREAM_AUTO_BYTES`].
    #[default]
    Auto,
    /// Always stream.
    On,
    /// Never stream: read the whole log into memory.
    Off,
}

impl StreamMode {
    /// True for the default, `"auto"` (which a written configuration leaves out).
    pub fn is_auto(&self) -> bool {
        *self == StreamMode::Auto
    }

    /// Whether a log of `log_bytes` bytes is streamed.
    pub fn streams(self, log_bytes: u64) -> bool {
        match self {
            StreamMode::Auto => log_bytes > STREAM_AUTO_BYTES,
            StreamMode::On => true,
            StreamMode::Off => false,
        }
    }
}

/// The key as TOML holds it.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Repr {
    Flag(bool),
    Word(Auto),
}

/// The one word the key takes.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Auto {
    Auto,
}

impl Serialize for StreamMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StreamMode::Auto => Repr::Word(Auto::Auto),
            StreamMode::On => Repr::Flag(true),
            StreamMode::Off => Repr::Flag(false),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for StreamMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Repr::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected \"auto\", true or false"))?
        {
            Repr::Word(Auto::Auto) => Ok(StreamMode::Auto),
            Repr::Flag(true) => Ok(StreamMode::On),
            Repr::Flag(false) => Ok(StreamMode::Off),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct T {
        stream: StreamMode,
    }

    #[test]
    fn the_key_reads_and_writes_its_three_values() {
        for (text, mode) in [
            ("stream = \"auto\"", StreamMode::Auto),
            ("stream = true", StreamMode::On),
            ("stream = false", StreamMode::Off),
        ] {
            let t: T = toml::from_str(text).unwrap();
            assert_eq!(t.stream, mode, "{text}");
            assert_eq!(toml::to_string(&t).unwrap().trim(), text);
        }
        let err = toml::from_str::<T>("stream = \"yes\"").unwrap_err();
        assert!(err.to_string().contains("\"auto\", true or false"), "{err}");
    }

    #[test]
    fn auto_streams_above_the_threshold_only() {
        assert!(!StreamMode::Auto.streams(STREAM_AUTO_BYTES));
        assert!(StreamMode::Auto.streams(STREAM_AUTO_BYTES + 1));
        assert!(StreamMode::On.streams(0));
        assert!(!StreamMode::Off.streams(u64::MAX));
    }
}
