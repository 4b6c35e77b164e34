//! HTTP's side of the door: errors as FastAPI's `{"detail": …}`, the bearer token, uploaded
//! files streamed to disk under a size limit, and the multipart reply MONAI Label's clients
//! parse.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::multipart::{Field, Multipart, MultipartError};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncWriteExt;

use crate::watch::{is_safe_id, Refusal};

/// An error reply: a status (4xx/5xx) and the detail.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

/// The handlers' result.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// 400 with `detail`.
    pub fn bad(detail: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, detail.into())
    }
    /// 404 with `detail`.
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError(StatusCode::NOT_FOUND, detail.into())
    }
    /// 500: the watcher stopped or dropped the question.
    pub fn gone() -> ApiError {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the job state is not answering (the server is stopping)".into(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(serde_json::json!({"detail": self.1}))).into_response()
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        match r {
            Refusal::NotFound(d) => ApiError(StatusCode::NOT_FOUND, d),
            Refusal::Invalid(d) => ApiError(StatusCode::BAD_REQUEST, d),
            Refusal::Busy(d) => ApiError(StatusCode::TOO_MANY_REQUESTS, d),
            Refusal::Failed(d) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, d),
        }
    }
}

impl From<MultipartError> for ApiError {
    fn from(e: MultipartError) -> ApiError {
        match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is over this server's upload limit (--max-upload-mb)".into(),
            ),
            s => {
                let status = if s.is_server_error() {
                    StatusCode::BAD_REQUEST
                } else {
                    s
                };
                ApiError(status, format!("malformed multipart body: {}", e.body_text()))
            }
        }
    }
}

/// `value` as an id (`[A-Za-z0-9._-]`), or a 400 naming `what`.
pub fn id(what: &str, value: Option<&str>) -> ApiResult<String> {
    match value {
        Some(v) if is_safe_id(v) => Ok(v.to_string()),
        Some(v) => Err(ApiError::bad(format!(
            "{what}={v:?} is not an id: ids are letters, digits, '.', '_' and '-'"
        ))),
        None => Err(ApiError::bad(format!("{what} is missing"))),
    }
}

/// The client id of a request (its rater name), `-` when none is sent.
pub fn client_id(params: &serde_json::Value) -> ApiResult<String> {
    match params.get("client_id") {
        None | Some(serde_json::Value::Null) => Ok("-".into()),
        Some(serde_json::Value::String(s)) => id("client_id", Some(s)),
        Some(other) => Err(ApiError::bad(format!("client_id must be a string, not {other}"))),
    }
}

/// Whether `headers` carry `token` (`Authorization: <type> <token>`), compared in constant time.
pub fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let given = given.split_once(' ').map_or(given, |(_, t)| t.trim());
    constant_time_eq(given.as_bytes(), token.as_bytes())
}

/// Equal bytes, in a time that depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let diff = a
        .iter()
        .zip(b)
        .fold(a.len() ^ b.len(), |acc, (x, y)| acc | usize::from(x ^ y));
    diff == 0
}

/// A request's form: the `params` JSON and the one file, if any.
pub struct Form {
    /// `params` (an empty object when absent).
    pub params: serde_json::Value,
    /// The file part, on disk: (path, the file name the client gave).
    pub file: Option<(PathBuf, String)>,
}

impl Form {
    /// Removes the uploaded file.
    pub fn discard(&self) {
        if let Some((p, _)) = &self.file {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Reads a multipart form: `params` as JSON, the first file part streamed into `dir` (at most
/// `limit` bytes; more is a 413 and nothing is kept).
pub async fn read_form(mut mp: Multipart, dir: &Path, limit: usize) -> ApiResult<Form> {
    let mut form = Form {
        params: serde_json::json!({}),
        file: None,
    };
    let outcome = read_fields(&mut mp, dir, limit, &mut form).await;
    if outcome.is_err() {
        form.discard();
    }
    outcome.map(|()| form)
}

async fn read_fields(mp: &mut Multipart, dir: &Path, limit: usize, form: &mut Form) -> ApiResult<()> {
    while let Some(field) = mp.next_field().await? {
        let name = field.name().unwrap_or_default().to_string();
        match field.file_name().map(String::from) {
            Some(file_name) if form.file.is_none() => {
                let path = upload_path(dir);
                form.file = Some((path.clone(), file_name));
                save(field, &path, limit).await?;
            }
            Some(_) => return Err(ApiError::bad("more than one file in the request")),
            None if name == "params" => {
                let text = field.text().await?;
                let text = if text.trim().is_empty() { "{}" } else { &text };
                form.params = serde_json::from_str(text)
                    .map_err(|e| ApiError::bad(format!("the params field is not JSON: {e}")))?;
            }
            None => {}
        }
    }
    Ok(())
}

/// A fresh file name under `dir`.
fn upload_path(dir: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{}-{n}.part", std::process::id()))
}

async fn save(mut field: Field<'_>, path: &Path, limit: usize) -> ApiResult<()> {
    let io = |e: std::io::Error| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{}: {e}", path.display()));
    let mut file = tokio::fs::File::create_new(path).await.map_err(io)?;
    let mut written = 0usize;
    while let Some(chunk) = field.chunk().await? {
        written += chunk.len();
        if written > limit {
            return Err(ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the uploaded file is larger than the server's limit of {limit} bytes (--max-upload-mb)"),
            ));
        }
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    Ok(())
}

/// A `multipart/form-data` reply: a `params` JSON part and one file part, as MONAI Label's
/// infer endpoint answers.
pub fn multipart_reply(params: &serde_json::Value, file_name: &str, bytes: &[u8]) -> Response {
    const BOUNDARY: &str = "delinea-result-4c1f0f5e9b";
    let mut body = Vec::with_capacity(bytes.len() + 512);
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"params\"\r\nContent-Type: application/json\r\n\r\n\
         {params}\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{file_name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let kind = format!("multipart/form-data; boundary={BOUNDARY}");
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// A file reply with its name (`Content-Disposition`), as FastAPI's `FileResponse`.
pub fn file_reply(file_name: &str, bytes: Vec<u8>) -> Response {
    let disposition = format!("attachment; filename=\"{file_name}\"");
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(authorized(&h, "s3cret"));
        assert!(!authorized(&h, "s3cre"));
        assert!(!authorized(&h, "s3cret!"));
        assert!(!authorized(&HeaderMap::new(), "s3cret"));
    }

    #[test]
    fn client_ids_are_ids() {
        assert_eq!(client_id(&serde_json::json!({})).unwrap(), "-");
        assert_eq!(
            client_id(&serde_json::json!({"client_id": "dr-lee"})).unwrap(),
            "dr-lee"
        );
        assert!(client_id(&serde_json::json!({"client_id": "../x"})).is_err());
        assert!(client_id(&serde_json::json!({"client_id": 3})).is_err());
    }
}
