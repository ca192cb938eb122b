//! The service's errors: every failed request gets a status and a JSON body
//! `{"error": {"kind": ..., "field": ..., "message": ...}}` naming the field at fault.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// What went wrong with a request, as a stable machine-readable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The body is not JSON (a syntax error or a truncated body).
    MalformedJson,
    /// A value has the wrong JSON type, or the body has an unknown key.
    WrongType,
    /// A required field is absent.
    MissingField,
    /// A feature that the run's schema does not have on that side.
    UnknownField,
    /// A value of the right type but out of range (`k = 0`, `k` above the corpus, an unknown
    /// item id to score).
    BadValue,
    /// The request names a model other than the one served.
    UnknownModel,
    /// The body is over the size limit.
    BodyTooLarge,
    /// More requests in one body than allowed.
    TooManyRequests,
    /// The request did not complete (body received and answered) within the time limit.
    Timeout,
    /// The server is at its concurrency limit.
    Overloaded,
    /// No such route.
    NotFound,
    /// A reload failed; the model served is unchanged.
    ReloadFailed,
    /// A failure of the server itself.
    Internal,
}

/// A failed request: its status, what went wrong and which field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiError {
    /// The HTTP status.
    #[serde(skip)]
    pub status: StatusCode,
    /// What went wrong.
    pub kind: ErrorKind,
    /// The field at fault, as a path into the body (`[2].k`, `features.age`), when there is
    /// one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A sentence for people.
    pub message: String,
}

impl ApiError {
    /// An error of `kind` with its status, about `field`.
    pub fn new(kind: ErrorKind, field: Option<String>, message: impl Into<String>) -> ApiError {
        let status = match kind {
            ErrorKind::MalformedJson => StatusCode::BAD_REQUEST,
            ErrorKind::WrongType
            | ErrorKind::MissingField
            | ErrorKind::UnknownField
            | ErrorKind::BadValue
            | ErrorKind::TooManyRequests
            | ErrorKind::ReloadFailed => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::UnknownModel | ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Timeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            kind,
            field,
            message: message.into(),
        }
    }

    /// A [`ErrorKind::BadValue`] about `field`.
    pub fn bad_value(field: String, message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::BadValue, Some(field), message)
    }

    /// An [`ErrorKind::Internal`] error.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Internal, None, message)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a ApiError,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: &self })).into_response()
    }
}

/// Joins a path prefix (`[2]`, or empty for a single request) and a field name.
pub fn field_path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}
