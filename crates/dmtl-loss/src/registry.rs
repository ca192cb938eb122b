//! Open sets of named, configured types: the student's objectives ([`crate::OBJECTIVES`]) and
//! the teacher's bodies (`dmtl_teacher::bodies::BODIES`).
//!
//! A [`Registry`] lists [`Entry`]s by name. A configuration table names one with the
//! registry's tag key (`type = "click_bce"`, `structure = "mmoe"`); the entry parses the other keys
//! into its own serde type, so a misspelt key is an error naming it. A [`Configured`] is the
//! result: the built value with its settings, which serializes back as the tag followed by every
//! setting (defaults written out) in the order its type declares them.

use std::fmt;
use std::sync::Arc;

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value built from its table, and the table as its type writes it back.
pub type Parsed<T> = (Arc<T>, toml::Table);

/// A kind of registered value (`dyn Objective`, a teacher body's builder).
pub trait Registered: 'static {
    /// The registry of this kind.
    fn registry() -> &'static Registry<Self>;

    /// The first setting of `value` out of range: its key inside the table and what it must
    /// be; `None` when all are valid.
    fn invalid_key(value: &Self) -> Option<(&'static str, String)>;
}

/// The entries of one kind, and how a configuration names them.
pub struct Registry<T: ?Sized + 'static> {
    /// The key naming the entry in a table, e.g. `type`.
    pub tag: &'static str,
    /// What prefixes the keys of the table in a model's configuration, e.g. `objective.`
    /// (empty when the keys stand at the top, as a teacher's body's do).
    pub section: &'static str,
    /// The entry of [`Configured::default`], with its default settings.
    pub default: &'static str,
    /// Whether a table without the tag is the default entry (else it is an error).
    pub tag_optional: bool,
    /// Every entry.
    pub entries: &'static [Entry<T>],
}

impl<T: ?Sized> Registry<T> {
    /// The entry named `name`.
    pub fn get(&self, name: &str) -> Option<&'static Entry<T>> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The names of every entry, in registration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|e| e.name).collect()
    }
}

/// One registered type: its name and how to parse its table.
pub struct Entry<T: ?Sized + 'static> {
    /// The tag's value that selects it.
    pub name: &'static str,
    /// Tables of other settings than the defaults (without the tag), which the tests run over
    /// every entry try besides the defaults.
    pub examples: &'static [&'static str],
    parse: fn(toml::Value) -> Result<Parsed<T>, String>,
}

impl<T: ?Sized> Entry<T> {
    /// The entry `name`, parsing with `parse` (built on [`parse_typed`]).
    pub const fn new(
        name: &'static str,
        parse: fn(toml::Value) -> Result<Parsed<T>, String>,
    ) -> Self {
        Entry {
            name,
            examples: &[],
            parse,
        }
    }

    /// The same entry with example tables for the shared tests.
    pub const fn with_examples(self, examples: &'static [&'static str]) -> Self {
        Entry { examples, ..self }
    }
}

impl<T: ?Sized + Registered> Entry<T> {
    /// Every configuration the shared tests try: the defaults, then each of
    /// [`Entry::examples`].
    ///
    /// # Panics
    /// When an example does not parse.
    pub fn test_configs(&self) -> Vec<Configured<T>> {
        std::iter::once("")
            .chain(self.examples.iter().copied())
            .map(|text| {
                let mut table: toml::Table = text
                    .parse()
                    .unwrap_or_else(|e| panic!("example of `{}` is not TOML: {e}", self.name));
                table.insert(T::registry().tag.into(), self.name.into());
                Configured::from_table(table).unwrap_or_else(|e| panic!("{e}"))
            })
            .collect()
    }
}

fn to_table<C: Serialize>(value: &C) -> toml::Table {
    match toml::Value::try_from(value) {
        Ok(toml::Value::Table(t)) => t,
        other => panic!("a registered type must serialize as a table, got {other:?}"),
    }
}

/// Parses `value` as `C` and writes it back as a table: the common part of every entry's
/// parse function, which then only puts the `C` behind the registry's trait.
pub fn parse_typed<C: Serialize + DeserializeOwned>(
    value: toml::Value,
) -> Result<(C, toml::Table), String> {
    let typed: C = value.try_into().map_err(|e| e.to_string())?;
    let table = to_table(&typed);
    Ok((typed, table))
}

/// Why a table is not a valid registered value. [`RegistryError::key`] names the key as written
/// in a model's configuration (`objective.type`, `objective.alpha`, `structure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError {
    /// The offending key, with the registry's section.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// Which failure it is.
    pub kind: RegistryErrorKind,
}

/// Which way a table failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryErrorKind {
    /// The tag is missing or names no entry.
    UnknownName,
    /// The entry could not parse the other keys (an unknown or mistyped key).
    Parse,
    /// A setting is out of range.
    Invalid,
}

impl RegistryError {
    /// The offending key, e.g. `objective.alpha`.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.key, self.message)
    }
}

impl std::error::Error for RegistryError {}

/// A registered value with its settings, e.g. the `[objective]` table of a configuration.
///
/// It (de)serializes as the registry's tag followed by the value's own keys, every key written
/// out (defaults included), so a saved configuration reads back to an equal one.
pub struct Configured<T: ?Sized + 'static> {
    name: &'static str,
    value: Arc<T>,
    params: toml::Table,
}

impl<T: ?Sized + Registered> Configured<T> {
    /// Parses a table with its tag (settings are not range-checked: see
    /// [`Configured::validate`]).
    pub fn from_table(mut table: toml::Table) -> Result<Self, RegistryError> {
        let reg = T::registry();
        let err = |key: &str, kind, message: String| RegistryError {
            key: format!("{}{key}", reg.section),
            message,
            kind,
        };
        let name = match table.remove(reg.tag) {
            Some(toml::Value::String(s)) => s,
            None if reg.tag_optional => reg.default.to_string(),
            _ => {
                let message = format!("is missing: one of {}", reg.names().join(", "));
                return Err(err(reg.tag, RegistryErrorKind::UnknownName, message));
            }
        };
        let Some(entry) = reg.get(&name) else {
            let message = format!("`{name}` is not one of {}", reg.names().join(", "));
            return Err(err(reg.tag, RegistryErrorKind::UnknownName, message));
        };
        let (value, params) = (entry.parse)(toml::Value::Table(table)).map_err(|m| {
            let key = match reg.section.trim_end_matches('.') {
                "" => reg.tag,
                section => section,
            };
            RegistryError {
                key: key.to_string(),
                message: format!("{} `{name}`: {}", reg.tag, m.trim_end()),
                kind: RegistryErrorKind::Parse,
            }
        })?;
        Ok(Configured {
            name: entry.name,
            value,
            params,
        })
    }

    /// The configuration of `typed`, the serde type of entry `name`.
    ///
    /// # Panics
    /// When no entry is named `name` or it does not parse `typed`'s table.
    pub fn of_named<C: Serialize>(name: &str, typed: &C) -> Self {
        let mut table = to_table(typed);
        table.insert(T::registry().tag.into(), name.into());
        Configured::from_table(table).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Checks the settings, naming the bad key.
    pub fn validate(&self) -> Result<(), RegistryError> {
        match T::invalid_key(&self.value) {
            Some((key, message)) => Err(RegistryError {
                key: format!("{}{key}", T::registry().section),
                message,
                kind: RegistryErrorKind::Invalid,
            }),
            None => Ok(()),
        }
    }
}

impl<T: ?Sized> Configured<T> {
    /// The entry's name (the tag's value).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The value.
    pub fn get(&self) -> &T {
        &self.value
    }

    /// The value, shared.
    pub fn shared(&self) -> Arc<T> {
        Arc::clone(&self.value)
    }

    /// The settings as written (without the tag).
    pub fn params(&self) -> &toml::Table {
        &self.params
    }
}

impl<T: ?Sized + Registered> Default for Configured<T> {
    /// The registry's default entry with its default settings.
    ///
    /// # Panics
    /// When the registry's default names no entry.
    fn default() -> Self {
        let mut table = toml::Table::new();
        table.insert(T::registry().tag.into(), T::registry().default.into());
        Configured::from_table(table).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl<T: ?Sized> Clone for Configured<T> {
    fn clone(&self) -> Self {
        Configured {
            name: self.name,
            value: Arc::clone(&self.value),
            params: self.params.clone(),
        }
    }
}

impl<T: ?Sized> PartialEq for Configured<T> {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.params == other.params
    }
}

impl<T: ?Sized> fmt::Debug for Configured<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.params)
    }
}

impl<T: ?Sized + Registered> Serialize for Configured<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1 + self.params.len()))?;
        map.serialize_entry(T::registry().tag, self.name)?;
        for (key, value) in &self.params {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de, T: ?Sized + Registered> Deserialize<'de> for Configured<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let table = toml::Table::deserialize(d)?;
        Configured::from_table(table).map_err(D::Error::custom)
    }
}
