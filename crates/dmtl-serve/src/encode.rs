//! The user side of requests as raw rows of the run's schema: the same [`RawLog`] that
//! `dmtl retrieve` reads from a user table, so that vocabularies and towers see the same
//! values.
//!
//! Every user-side and context-side column of the schema must be given (the user id as
//! `user_id`, the other user columns under `features`, the context columns under `context`);
//! a key the schema does not have on that side is refused. Values, as a CSV cell would hold
//! them:
//! - categorical: a string, taken as written, or an integer (its decimal text);
//! - multi-hot: an array of strings, or one string joined by the column's separator; empty
//!   tokens are dropped, as the readers drop them;
//! - dense: a finite number.

use dmtl_data::{Kind, RawColumn, RawLog, Schema, Side, StrColumn, OOV};
use serde_json::Value;

use crate::error::{field_path, ApiError, ErrorKind};
use crate::model::ServedModel;
use crate::wire::{missing, UserInput};

/// Builds the rows of `inputs` (one row each; `prefixes[i]` is request `i`'s path in the
/// body) for `schema`.
///
/// # Errors
/// An [`ApiError`] naming the first field that is missing, unknown or of the wrong type.
pub fn user_rows(
    schema: &Schema,
    inputs: &[UserInput<'_>],
    prefixes: &[String],
) -> Result<RawLog, ApiError> {
    for (input, prefix) in inputs.iter().zip(prefixes) {
        check_keys(schema, input, prefix)?;
    }
    let mut columns = Vec::new();
    for spec in &schema.columns {
        if !matches!(spec.side, Side::User | Side::Context) {
            continue;
        }
        let mut col = RawColumn::empty(spec.kind);
        for (input, prefix) in inputs.iter().zip(prefixes) {
            if spec.name == schema.ids.user {
                let id = input.user_id.ok_or_else(|| missing(prefix, "user_id"))?;
                push_str(&mut col, id);
                continue;
            }
            let (map, side) = match spec.side {
                Side::Context => (input.context, "context"),
                _ => (input.features, "features"),
            };
            let value = map
                .and_then(|m| m.get(&spec.name))
                .ok_or_else(|| missing(&field_path(prefix, side), &spec.name))?;
            let path = field_path(&field_path(prefix, side), &spec.name);
            push_value(&mut col, spec.kind, spec.separator(), value, path)?;
        }
        columns.push((spec.name.clone(), col));
    }
    let raw = RawLog {
        source: "request".to_string(),
        columns,
        n_rows: inputs.len(),
        ..RawLog::default()
    };
    Ok(raw)
}

/// Whether the user id of `input` is in the run's vocabulary (`dmtl retrieve`'s
/// `known_user`).
pub fn known_user(model: &ServedModel, user_id: &str) -> bool {
    model
        .vocabs
        .get(&model.schema.ids.user)
        .is_none_or(|v| v.index(user_id) != OOV)
}

/// Refuses keys of `features` / `context` that are not user-side / context-side columns.
fn check_keys(schema: &Schema, input: &UserInput<'_>, prefix: &str) -> Result<(), ApiError> {
    let sides = [
        (input.features, "features", Side::User),
        (input.context, "context", Side::Context),
    ];
    for (map, name, side) in sides {
        for key in map.into_iter().flat_map(|m| m.keys()) {
            let ok = schema
                .column(key)
                .is_some_and(|c| c.side == side && c.name != schema.ids.user);
            if !ok {
                let hint = if key == &schema.ids.user {
                    "the user id goes in `user_id`".to_string()
                } else {
                    let names: Vec<&str> = schema
                        .features(side)
                        .filter(|c| c.name != schema.ids.user)
                        .map(|c| c.name.as_str())
                        .collect();
                    format!("the {side} columns are: {}", names.join(", "))
                };
                return Err(ApiError::new(
                    ErrorKind::UnknownField,
                    Some(field_path(&field_path(prefix, name), key)),
                    format!("`{key}` is not a {side} column of the run's schema; {hint}"),
                ));
            }
        }
    }
    Ok(())
}

fn push_str(col: &mut RawColumn, s: &str) {
    if let RawColumn::Categorical(v) = col {
        v.push(s);
    }
}

fn wrong(path: String, expected: &str, got: &Value) -> ApiError {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    ApiError::new(
        ErrorKind::WrongType,
        Some(path),
        format!("expected {expected}, got {got}"),
    )
}

fn push_value(
    col: &mut RawColumn,
    kind: Kind,
    sep: &str,
    value: &Value,
    path: String,
) -> Result<(), ApiError> {
    match (kind, col) {
        (Kind::Categorical, RawColumn::Categorical(v)) => match value {
            Value::String(s) => v.push(s),
            Value::Number(n) if n.is_i64() || n.is_u64() => v.push(&n.to_string()),
            other => return Err(wrong(path, "a string or an integer", other)),
        },
        (Kind::MultiHot, RawColumn::MultiHot { tokens, offsets }) => {
            match value {
                Value::String(s) => push_tokens(tokens, s.split(sep)),
                Value::Array(a) => {
                    let mut strs = Vec::with_capacity(a.len());
                    for (j, t) in a.iter().enumerate() {
                        match t {
                            Value::String(s) => strs.push(s.as_str()),
                            other => return Err(wrong(format!("{path}[{j}]"), "a string", other)),
                        }
                    }
                    push_tokens(tokens, strs.into_iter());
                }
                other => return Err(wrong(path, "an array of strings or a string", other)),
            }
            offsets.push(tokens.len());
        }
        (Kind::Dense, RawColumn::Dense(v)) => match value.as_f64() {
            Some(x) if (x as f32).is_finite() => v.push(x as f32),
            _ => return Err(wrong(path, "a finite number", value)),
        },
        _ => return Err(ApiError::internal("column kinds out of step")),
    }
    Ok(())
}

fn push_tokens<'a>(tokens: &mut StrColumn, it: impl Iterator<Item = &'a str>) {
    for t in it.filter(|t| !t.is_empty()) {
        tokens.push(t);
    }
}
