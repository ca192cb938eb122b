//! The JSON bodies of the service, and the parsing of a body of one or many requests.
//!
//! A body is one request object, answered by one response object, or an array of requests,
//! answered by an array of responses in the same order. Every field is optional on the wire
//! so that a missing one is reported by name ([`ErrorKind::MissingField`]); a value of the
//! wrong type or an unknown key is reported with its path by `serde_path_to_error`.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{field_path, ApiError, ErrorKind};

/// The user side of a request: who, their features, and the request's context.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserInput<'a> {
    /// The raw user id (unseen ids get the out-of-vocabulary row).
    pub user_id: Option<&'a str>,
    /// The user-side features of the schema other than the id, by column name.
    pub features: Option<&'a BTreeMap<String, Value>>,
    /// The context-side features of the schema, by column name.
    pub context: Option<&'a BTreeMap<String, Value>>,
}

/// One `POST /retrieve` request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrieveRequest {
    /// The raw user id.
    pub user_id: Option<String>,
    /// The user-side features other than the id.
    pub features: Option<BTreeMap<String, Value>>,
    /// The context-side features.
    pub context: Option<BTreeMap<String, Value>>,
    /// How many items, from 1 to the corpus size (and the server's `--max-k`).
    pub k: Option<u64>,
    /// Raw item ids never to return (e.g. already read); ids not in the corpus are ignored.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// The model expected; when given it must be the one served.
    pub model: Option<String>,
}

/// One `POST /score` request: one user and the items to score for them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreRequest {
    /// The raw user id.
    pub user_id: Option<String>,
    /// The user-side features other than the id.
    pub features: Option<BTreeMap<String, Value>>,
    /// The context-side features.
    pub context: Option<BTreeMap<String, Value>>,
    /// Raw ids of corpus items to score.
    pub item_ids: Option<Vec<String>>,
    /// The model expected; when given it must be the one served.
    pub model: Option<String>,
}

/// The request parts every endpoint shares.
pub trait UserRequest {
    /// The user side.
    fn user(&self) -> UserInput<'_>;
    /// The model asked for, if any.
    fn model(&self) -> Option<&str>;
}

impl UserRequest for RetrieveRequest {
    fn user(&self) -> UserInput<'_> {
        UserInput {
            user_id: self.user_id.as_deref(),
            features: self.features.as_ref(),
            context: self.context.as_ref(),
        }
    }
    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }
}

impl UserRequest for ScoreRequest {
    fn user(&self) -> UserInput<'_> {
        UserInput {
            user_id: self.user_id.as_deref(),
            features: self.features.as_ref(),
            context: self.context.as_ref(),
        }
    }
    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }
}

/// One item of a retrieved list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievedItem {
    /// The raw item id.
    pub id: String,
    /// The score (inner product, a logit).
    pub score: f32,
}

/// The answer to one [`RetrieveRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrieveResponse {
    /// The raw user id asked for.
    pub user_id: String,
    /// Whether the user id was seen in training (else the out-of-vocabulary row served it).
    pub known_user: bool,
    /// The top-K items, best first.
    pub items: Vec<RetrievedItem>,
    /// The model that answered.
    pub model: String,
    /// Its load counter ([`crate::model::ServedModel::version`]).
    pub version: u64,
}

/// One scored item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairScore {
    /// The raw item id.
    pub item_id: String,
    /// The score (logit), as `dmtl score`'s `score` column.
    pub score: f32,
    /// `sigmoid(score)`, as `dmtl score`'s `probability` column.
    pub probability: f32,
}

/// The answer to one [`ScoreRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreResponse {
    /// The raw user id asked for.
    pub user_id: String,
    /// Whether the user id was seen in training.
    pub known_user: bool,
    /// One entry per item asked for, in that order.
    pub scores: Vec<PairScore>,
    /// The model that answered.
    pub model: String,
    /// Its load counter.
    pub version: u64,
}

/// `POST /reload`: an optional run folder and model (default: those served now).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadRequest {
    /// The run folder to load.
    pub run: Option<String>,
    /// The model of that run.
    pub model: Option<String>,
}

/// What `GET /health` and `POST /reload` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// `"ok"`.
    pub status: String,
    /// The run folder served.
    pub run: String,
    /// The model served.
    pub model: String,
    /// Its load counter.
    pub version: u64,
    /// Items in the corpus.
    pub items: usize,
    /// Vector dimension.
    pub dim: usize,
}

/// A parsed body: its requests, and whether it was an array (answered by an array).
#[derive(Debug)]
pub struct Parsed<T> {
    /// The requests, in body order.
    pub requests: Vec<T>,
    /// `true` when the body was an array.
    pub many: bool,
}

impl<T> Parsed<T> {
    /// The path prefix of request `i` in error fields: `[i]` in an array, empty otherwise.
    pub fn prefix(&self, i: usize) -> String {
        if self.many {
            format!("[{i}]")
        } else {
            String::new()
        }
    }
}

/// Parses a body of one request object or an array of at most `max_requests`.
///
/// # Errors
/// [`ErrorKind::MalformedJson`] for text that is not JSON, [`ErrorKind::WrongType`] with the
/// path of the value for a well-formed body of the wrong shape, [`ErrorKind::TooManyRequests`]
/// for an array that is empty or too long.
pub fn parse_body<T: DeserializeOwned>(
    bytes: &[u8],
    max_requests: usize,
) -> Result<Parsed<T>, ApiError> {
    let many = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'[');
    let requests = if many {
        let v: Vec<T> = deserialize(bytes)?;
        if v.is_empty() || v.len() > max_requests {
            return Err(ApiError::new(
                ErrorKind::TooManyRequests,
                Some("body".into()),
                format!(
                    "{} requests in one body: give from 1 to {max_requests}",
                    v.len()
                ),
            ));
        }
        v
    } else {
        vec![deserialize(bytes)?]
    };
    Ok(Parsed { requests, many })
}

/// Deserializes `bytes` as a `T`, with the path of a value of the wrong type.
pub fn deserialize<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let kind = match inner.classify() {
            serde_json::error::Category::Data => ErrorKind::WrongType,
            _ => ErrorKind::MalformedJson,
        };
        let field = (kind == ErrorKind::WrongType).then(|| {
            if path == "." {
                "body".to_string()
            } else {
                path
            }
        });
        ApiError::new(kind, field, inner.to_string())
    })?;
    // Text after the value is malformed too.
    de.end()
        .map_err(|e| ApiError::new(ErrorKind::MalformedJson, None, e.to_string()))?;
    Ok(v)
}

/// The error for a required field that is absent.
pub fn missing(prefix: &str, name: &str) -> ApiError {
    ApiError::new(
        ErrorKind::MissingField,
        Some(field_path(prefix, name)),
        format!("`{name}` is required"),
    )
}
