//! The routes 3D Slicer's MONAILabel module and the `monailabel` client call, trailing slashes
//! exactly as MONAI Label's. Each handler parses, asks the watcher or reads its board, replies.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::http::{self, ApiError, ApiResult};
use super::monai::{self, FINAL, MODEL};
use super::Shared;
use crate::volume;
use crate::watch::{self, Ask, Board, Upload};

type Params = HashMap<String, String>;

/// Serves `listener` until `stop` is set.
pub fn serve(listener: std::net::TcpListener, shared: Shared, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let stopped = async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        axum::serve(listener, router(shared))
            .with_graceful_shutdown(stopped)
            .await
    })
}

fn router(shared: Shared) -> Router {
    let limit = shared.max_upload + 64 * 1024;
    Router::new()
        .route("/info/", get(info))
        .route("/activelearning/{strategy}", post(next_sample))
        .route("/datastore/", get(datastore))
        .route("/datastore/image", get(image))
        .route("/datastore/label", get(label).put(put_label))
        .route("/infer/{model}", post(infer))
        .route("/train/", get(train_status).delete(train_stop))
        .route("/train/{model}", post(train_start))
        .route_layer(middleware::from_fn_with_state(shared.clone(), token))
        .route("/auth/", get(auth))
        .route("/auth/token", post(auth_token))
        .fallback(|| async { ApiError::not_found("no such route in the MONAI Label protocol this server speaks") })
        .method_not_allowed_fallback(|| async {
            ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route".into(),
            )
        })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared)
}

/// Refuses a request without the token, when the server has one.
async fn token(State(s): State<Shared>, request: Request, next: Next) -> Response {
    match &s.token {
        Some(t) if !http::authorized(request.headers(), t) => ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token (Authorization: Bearer <token>)".into(),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

async fn auth(State(s): State<Shared>) -> Json<Value> {
    Json(json!({"enabled": s.token.is_some(), "client_id": MODEL, "realm": null}))
}

/// MONAI Label's password login, for a static token: the password is the token.
async fn auth_token(State(s): State<Shared>, body: String) -> ApiResult<Json<Value>> {
    let Some(t) = &s.token else {
        return Ok(Json(json!({"access_token": null, "token_type": null})));
    };
    let password = body.split('&').find_map(|kv| kv.strip_prefix("password="));
    let given = password.map(|p| p.replace('+', " ")).unwrap_or_default();
    if !http::constant_time_eq(given.as_bytes(), t.as_bytes()) {
        return Err(ApiError(StatusCode::UNAUTHORIZED, "wrong token".into()));
    }
    Ok(Json(json!({"access_token": t.as_ref(), "token_type": "Bearer"})))
}

fn board(s: &Shared) -> ApiResult<Board> {
    s.board
        .read()
        .map(|b| b.clone())
        .map_err(|_| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "the board is poisoned".into()))
}

/// Asks the watcher and waits for its answer.
async fn ask<T>(s: &Shared, make: impl FnOnce(watch::Reply<T>) -> Ask) -> ApiResult<T> {
    let (tx, rx) = oneshot::channel();
    if !s.asker.ask(make(tx)) {
        return Err(ApiError::gone());
    }
    Ok(rx.await.map_err(|_| ApiError::gone())??)
}

fn query(q: Result<Query<Params>, QueryRejection>) -> ApiResult<Params> {
    q.map(|Query(p)| p).map_err(|e| ApiError::bad(e.body_text()))
}

async fn info(State(s): State<Shared>) -> ApiResult<Json<Value>> {
    Ok(Json(monai::info(&board(&s)?)))
}

async fn next_sample(
    State(s): State<Shared>,
    Path(strategy): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let params = match body {
        Ok(Json(v)) => v,
        Err(JsonRejection::MissingJsonContentType(_)) => json!({}),
        Err(e) => return Err(ApiError::bad(e.body_text())),
    };
    let client = http::client_id(&params)?;
    let sample = ask(&s, |reply| Ask::Next {
        strategy,
        client,
        reply,
    })
    .await?;
    Ok(Json(sample.map_or(json!({}), |x| json!(x))))
}

async fn datastore(State(s): State<Shared>, q: Result<Query<Params>, QueryRejection>) -> ApiResult<Json<Value>> {
    let b = board(&s)?;
    Ok(Json(match query(q)?.get("output").map(String::as_str) {
        None | Some("stats") => monai::stats(&b),
        Some("all") => monai::listing(&b),
        Some("train") => monai::train_list(&b),
        Some(o) => return Err(ApiError::bad(format!("output={o:?}: one of stats, all, train"))),
    }))
}

async fn image(State(s): State<Shared>, q: Result<Query<Params>, QueryRejection>) -> ApiResult<Response> {
    let id = http::id("image", query(q)?.get("image").map(String::as_str))?;
    let b = board(&s)?;
    let image = b
        .images
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("no image {id:?}")))?;
    let (state, file, name) = (s.state.clone(), image.file.clone(), image.name.clone());
    let bytes = blocking(move || {
        let path = watch::served_image(&state, &id, &file)?;
        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
    })
    .await?;
    Ok(http::file_reply(&name, bytes))
}

async fn label(State(s): State<Shared>, q: Result<Query<Params>, QueryRejection>) -> ApiResult<Response> {
    let q = query(q)?;
    let id = http::id("label", q.get("label").map(String::as_str))?;
    let tag = q.get("tag").map_or(FINAL, String::as_str);
    let b = board(&s)?;
    let image = b
        .images
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("no image {id:?}")))?;
    let stored = match tag.strip_prefix("final@") {
        _ if tag == FINAL => image.latest.clone(),
        Some(rater) => image.labels.get(rater).cloned(),
        None => None,
    };
    let stored = stored.ok_or_else(|| ApiError::not_found(format!("image {id:?} has no label tagged {tag:?}")))?;
    let bytes = blocking(move || std::fs::read(&stored).map_err(|e| format!("{}: {e}", stored.display()))).await?;
    Ok(http::file_reply(&format!("{id}.nii.gz"), bytes))
}

/// `PUT /datastore/label?image=ID&tag=final`: the label stored under the client's rater name.
async fn put_label(
    State(s): State<Shared>,
    q: Result<Query<Params>, QueryRejection>,
    mp: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    let image = http::id("image", q.get("image").map(String::as_str))?;
    let tag = q.get("tag").map_or("", String::as_str);
    if !(tag.is_empty() || tag == FINAL) {
        return Err(ApiError::bad(format!(
            "tag={tag:?}: this server stores final labels only (tag=final)"
        )));
    }
    let mp = mp.map_err(|e| ApiError::bad(format!("not a multipart upload: {}", e.body_text())))?;
    let form = http::read_form(mp, &s.uploads, s.max_upload).await?;
    let upload = upload(&image, &form);
    let upload = match upload {
        Ok(u) => u,
        Err(e) => {
            form.discard();
            return Err(e);
        }
    };
    let revision = ask(&s, |reply| Ask::Label(Box::new(upload), reply)).await?;
    Ok(Json(
        json!({"image": image, "label": image, "rater": revision.rater, "revision": revision}),
    ))
}

/// The watcher's question for a label form.
fn upload(image: &str, form: &http::Form) -> ApiResult<Upload> {
    let Some((file, name)) = &form.file else {
        return Err(ApiError::bad("no label file in the request (multipart field 'label')"));
    };
    let suffix = [".seg.nrrd", ".nrrd", ".nii.gz", ".nii", ".dcm"]
        .into_iter()
        .find(|x| name.to_ascii_lowercase().ends_with(x))
        .ok_or_else(|| {
            ApiError::bad(format!(
                "{name}: labels are .nii.gz, .nii, .nrrd, .seg.nrrd or an RTSTRUCT .dcm"
            ))
        })?;
    let names = match form.params.get("label_info") {
        None | Some(Value::Null) => None,
        Some(v) => Some(label_info(v)?),
    };
    Ok(Upload {
        image: image.to_string(),
        rater: http::client_id(&form.params)?,
        file: file.clone(),
        suffix: suffix.to_string(),
        names,
    })
}

/// Slicer's `label_info`: `[{"name": …, "idx": …}, …]`.
fn label_info(v: &Value) -> ApiResult<Vec<(String, i64)>> {
    let bad = || ApiError::bad(format!("label_info must be a list of {{name, idx}}, not {v}"));
    let items = v.as_array().ok_or_else(bad)?;
    items
        .iter()
        .map(|i| {
            let name = i.get("name").and_then(Value::as_str).ok_or_else(bad)?;
            let idx = i.get("idx").and_then(Value::as_i64).ok_or_else(bad)?;
            Ok((name.to_string(), idx))
        })
        .collect()
}

/// `POST /infer/{model}?image=ID`: the current generation's mask, NRRD (uint8, LPS) unless
/// `result_extension` asks for NIfTI; `output=image` sends the file alone.
async fn infer(
    State(s): State<Shared>,
    Path(model): Path<String>,
    q: Result<Query<Params>, QueryRejection>,
    mp: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<Response> {
    if model != MODEL {
        return Err(ApiError::not_found(format!(
            "no model {model:?}; this server's model is {MODEL:?}"
        )));
    }
    let q = query(q)?;
    let image = http::id("image", q.get("image").map(String::as_str))?;
    let params = match mp {
        Ok(mp) => {
            let form = http::read_form(mp, &s.uploads, 1 << 20).await?;
            form.discard();
            form.params
        }
        Err(_) => json!({}),
    };
    let nifti = matches!(
        params.get("result_extension").and_then(Value::as_str),
        Some(".nii.gz" | ".nii")
    );
    let inferred = ask(&s, |reply| Ask::Infer {
        image: image.clone(),
        reply,
    })
    .await?;
    let mask = inferred.mask.clone();
    let bytes = blocking(move || match nifti {
        true => std::fs::read(&mask).map_err(|e| format!("{}: {e}", mask.display())),
        false => volume::read_label_map(&mask)
            .map(|m| volume::nrrd::encode_label_map(&m))
            .map_err(|e| e.to_string()),
    })
    .await?;
    let name = format!(
        "{image}-gen{:04}{}",
        inferred.generation,
        if nifti { ".nii.gz" } else { ".nrrd" }
    );
    if q.get("output").map(String::as_str) == Some("image") {
        return Ok(http::file_reply(&name, bytes));
    }
    let reply = json!({"label_names": {watch::LABEL_NAME: 1}, "model": MODEL, "generation": inferred.generation,
                       "fresh": inferred.fresh});
    Ok(http::multipart_reply(&reply, &name, &bytes))
}

async fn train_status(State(s): State<Shared>, q: Result<Query<Params>, QueryRejection>) -> ApiResult<Json<Value>> {
    let q = query(q)?;
    let b = board(&s)?;
    if let Some(p) = &b.training {
        return Ok(Json(monai::running_task(p)));
    }
    let only_running = q.get("check_if_running").is_some_and(|v| v == "true");
    match (&b.last_training, only_running) {
        (Some(e), false) => Ok(Json(monai::ended_task(e))),
        (_, true) => Err(ApiError::not_found("No Train Tasks are currently Running")),
        (None, false) => Err(ApiError::not_found("No Train Tasks Found")),
    }
}

async fn train_start(
    State(s): State<Shared>,
    Path(model): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    if model != MODEL {
        return Err(ApiError::not_found(format!(
            "no trainer {model:?}; this server's trainer is {MODEL:?}"
        )));
    }
    let params = body.map_or(json!({}), |Json(v)| v);
    let client = http::client_id(&params)?;
    let p = ask(&s, |reply| Ask::Train { client, reply }).await?;
    let mut task = monai::running_task(&p);
    task["status"] = json!("SUBMITTED");
    Ok(Json(task))
}

async fn train_stop(State(s): State<Shared>) -> ApiResult<Json<Value>> {
    let client = "a client".to_string();
    let stopped = ask(&s, |reply| Ask::Stop { client, reply }).await?;
    let b = board(&s)?;
    match (stopped, &b.last_training) {
        (_, Some(e)) => Ok(Json(monai::ended_task(e))),
        (_, None) => Ok(Json(json!({"status": "STOPPED", "details": ["no training has run"]}))),
    }
}

/// Runs file work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, String> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e))
}
