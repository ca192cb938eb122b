//! `POST /retrieve` and `POST /score`: parse and check the body against the model served, queue
//! the rows for the batching worker, and answer in the body's shape.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::batcher::{Job, Output, SubmitError, Task};
use crate::encode::{known_user, user_rows};
use crate::error::{field_path, ApiError, ErrorKind};
use crate::model::ServedModel;
use crate::state::AppState;
use crate::wire::{
    missing, parse_body, PairScore, Parsed, RetrieveRequest, RetrieveResponse, RetrievedItem,
    ScoreRequest, ScoreResponse, UserRequest,
};

/// `POST /retrieve`: the top-K items of each request.
pub async fn retrieve(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let parsed: Parsed<RetrieveRequest> = parse_body(&body_bytes(body)?, st.limits.max_requests)?;
    let model = st.model.load_full();
    let n_items = model.n_items();
    let max_k = st.limits.max_k.min(n_items);
    let (mut ks, mut exclude) = (Vec::new(), Vec::new());
    for (i, r) in parsed.requests.iter().enumerate() {
        let prefix = parsed.prefix(i);
        check_model(&model, r, &prefix)?;
        let k = r.k.ok_or_else(|| missing(&prefix, "k"))?;
        if k == 0 || k > max_k as u64 {
            return Err(ApiError::bad_value(
                field_path(&prefix, "k"),
                format!(
                    "k = {k}: give from 1 to {max_k} (the corpus holds {n_items} items, the \
                     server answers at most {} per request)",
                    st.limits.max_k
                ),
            ));
        }
        ks.push(k as usize);
        // Ids not in the corpus cannot be returned anyway.
        exclude.push(
            r.exclude
                .iter()
                .filter_map(|id| model.rows.get(id).copied())
                .collect(),
        );
    }
    let (rows, known) = user_side(&model, &parsed)?;
    let out = run(&st, &model, rows, Task::Retrieve { k: ks, exclude }).await?;
    let Output::Retrieved(lists) = out else {
        return Err(ApiError::internal("the worker answered another task"));
    };
    let responses: Vec<RetrieveResponse> = parsed
        .requests
        .iter()
        .zip(lists)
        .zip(known)
        .map(|((r, (ids, scores)), known_user)| RetrieveResponse {
            user_id: r.user_id.clone().unwrap_or_default(),
            known_user,
            items: ids
                .iter()
                .zip(scores)
                .map(|(&i, score)| RetrievedItem {
                    id: model.index.id(i).unwrap_or_default().to_string(),
                    score,
                })
                .collect(),
            model: model.name.clone(),
            version: model.version,
        })
        .collect();
    Ok(shaped(responses, parsed.many))
}

/// `POST /score`: the score of each item asked for, per request.
pub async fn score(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let parsed: Parsed<ScoreRequest> = parse_body(&body_bytes(body)?, st.limits.max_requests)?;
    let model = st.model.load_full();
    let mut items = Vec::new();
    for (i, r) in parsed.requests.iter().enumerate() {
        let prefix = parsed.prefix(i);
        check_model(&model, r, &prefix)?;
        let ids = r
            .item_ids
            .as_ref()
            .ok_or_else(|| missing(&prefix, "item_ids"))?;
        if ids.len() > st.limits.max_k {
            return Err(ApiError::bad_value(
                field_path(&prefix, "item_ids"),
                format!(
                    "{} items: at most {} per request",
                    ids.len(),
                    st.limits.max_k
                ),
            ));
        }
        let mut rows = Vec::with_capacity(ids.len());
        for (j, id) in ids.iter().enumerate() {
            let row = model.rows.get(id).ok_or_else(|| {
                ApiError::bad_value(
                    field_path(&prefix, &format!("item_ids[{j}]")),
                    format!("item `{id}` is not in the served corpus"),
                )
            })?;
            rows.push(*row);
        }
        items.push(rows);
    }
    let (rows, known) = user_side(&model, &parsed)?;
    let out = run(&st, &model, rows, Task::Score { items }).await?;
    let Output::Scored(scores) = out else {
        return Err(ApiError::internal("the worker answered another task"));
    };
    let responses: Vec<ScoreResponse> = parsed
        .requests
        .iter()
        .zip(scores)
        .zip(known)
        .map(|((r, s), known_user)| ScoreResponse {
            user_id: r.user_id.clone().unwrap_or_default(),
            known_user,
            scores: r
                .item_ids
                .iter()
                .flatten()
                .zip(s)
                .map(|(id, score)| PairScore {
                    item_id: id.clone(),
                    score,
                    probability: dmtl_loss::stable::sigmoid(score),
                })
                .collect(),
            model: model.name.clone(),
            version: model.version,
        })
        .collect();
    Ok(shaped(responses, parsed.many))
}

/// The body, or the error for one over the size limit or cut off.
pub fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(
            axum::extract::rejection::FailedToBufferBody::LengthLimitError(_),
        ) => ApiError::new(
            ErrorKind::BodyTooLarge,
            Some("body".into()),
            "the body is over the server's size limit (--max-body-bytes)",
        ),
        other => ApiError::new(
            ErrorKind::MalformedJson,
            Some("body".into()),
            format!("the body could not be read: {}", other.body_text()),
        ),
    })
}

fn check_model(model: &ServedModel, r: &impl UserRequest, prefix: &str) -> Result<(), ApiError> {
    match r.model() {
        Some(m) if m != model.name => Err(ApiError::new(
            ErrorKind::UnknownModel,
            Some(field_path(prefix, "model")),
            format!(
                "model `{m}` is not served here; this server serves `{}`",
                model.name
            ),
        )),
        _ => Ok(()),
    }
}

/// The raw user rows of the requests and whether each user is known.
fn user_side<T: UserRequest>(
    model: &ServedModel,
    parsed: &Parsed<T>,
) -> Result<(dmtl_data::RawLog, Vec<bool>), ApiError> {
    let prefixes: Vec<String> = (0..parsed.requests.len())
        .map(|i| parsed.prefix(i))
        .collect();
    let inputs: Vec<_> = parsed.requests.iter().map(|r| r.user()).collect();
    let rows = user_rows(&model.schema, &inputs, &prefixes)?;
    let known: Vec<bool> = inputs
        .iter()
        .map(|u| known_user(model, u.user_id.unwrap_or_default()))
        .collect();
    let unseen = known.iter().filter(|&&k| !k).count();
    if unseen > 0 {
        metrics::counter!(crate::metrics::UNSEEN_USERS).increment(unseen as u64);
    }
    Ok((rows, known))
}

/// Queues the rows for the batching worker and waits for its answer.
async fn run(
    st: &AppState,
    model: &Arc<ServedModel>,
    rows: dmtl_data::RawLog,
    task: Task,
) -> Result<Output, ApiError> {
    let (tx, rx) = oneshot::channel();
    let job = Job {
        model: model.clone(),
        rows,
        task,
        reply: tx,
    };
    st.batcher.submit(job).map_err(|e| match e {
        SubmitError::Full => ApiError::new(
            ErrorKind::Overloaded,
            None,
            "the server's queue is full; retry later",
        ),
        SubmitError::Gone => ApiError::internal(e.to_string()),
    })?;
    match rx.await {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(ApiError::internal(e.to_string())),
        Err(_) => Err(ApiError::internal(
            "the batching worker dropped the request",
        )),
    }
}

/// One response object for a single request, an array for an array.
fn shaped<T: Serialize>(mut responses: Vec<T>, many: bool) -> Response {
    if many {
        Json(responses).into_response()
    } else {
        match responses.pop() {
            Some(r) => Json(r).into_response(),
            None => ApiError::internal("no response").into_response(),
        }
    }
}
