//! The plugin side of each exported function (the export macros call these): arguments made
//! safe, the plugin called inside `catch_unwind`, the answer put in plugin-owned buffers with
//! their own release function. A panic becomes [`STATUS_PANIC`] and its message; nothing
//! unwinds into the host.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::abi::{CallContext, PlanAnswer, PoolView, QueryAnswer, StrRef, STATUS_ERROR, STATUS_OK, STATUS_PANIC};
use crate::{AdaptPlugin, Host, Pick, Pool, QueryPlugin};

/// What a query answer's pointers point into.
struct QueryBuffers {
    rows: Vec<u64>,
    scores: Vec<f64>,
    reasons: Vec<u8>,
    error: String,
}

/// What a plan answer's pointers point into.
struct PlanBuffers {
    json: String,
    error: String,
}

thread_local! {
    /// Where the last panic on this thread happened (the hook records it, quietly).
    static PANIC_AT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Replaces the plugin's panic hook, once, by one that records where a panic happened instead
/// of printing it: a plugin's panic is reported by the host, as an error.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let at = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
            PANIC_AT.with(|p| *p.borrow_mut() = at);
        }))
    });
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    match PANIC_AT.with(|p| p.borrow_mut().take()) {
        Some(at) => format!("the plugin panicked at {at}: {text}"),
        None => format!("the plugin panicked: {text}"),
    }
}

/// The params JSON (`{}` when empty).
fn params(params: StrRef) -> Result<serde_json::Value, String> {
    // SAFETY: a host string valid for the call.
    let text = unsafe { params.to_str_lossy() };
    if text.trim().is_empty() {
        return Ok(serde_json::json!({}));
    }
    serde_json::from_str(&text).map_err(|e| format!("the parameters are not JSON: {e}"))
}

unsafe extern "C" fn release_query(answer: *mut QueryAnswer) {
    // A panic here would abort the host: there is none to catch, but keep the guard.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `owner` came from `Box::into_raw` in `query` and is released once (the
        // host's contract); the answer is the host's copy of ours.
        unsafe {
            if let Some(answer) = answer.as_mut() {
                if !answer.owner.is_null() {
                    drop(Box::from_raw(answer.owner as *mut QueryBuffers));
                    answer.owner = std::ptr::null_mut();
                }
            }
        }
    }));
}

unsafe extern "C" fn release_plan(answer: *mut PlanAnswer) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: as `release_query`.
        unsafe {
            if let Some(answer) = answer.as_mut() {
                if !answer.owner.is_null() {
                    drop(Box::from_raw(answer.owner as *mut PlanBuffers));
                    answer.owner = std::ptr::null_mut();
                }
            }
        }
    }));
}

/// Fills `out` from `buffers` (moved into a box the answer owns).
fn query_answer(out: &mut QueryAnswer, buffers: QueryBuffers) {
    let boxed = Box::new(buffers);
    out.rows = if boxed.rows.is_empty() {
        std::ptr::null()
    } else {
        boxed.rows.as_ptr()
    };
    out.scores = if boxed.scores.is_empty() {
        std::ptr::null()
    } else {
        boxed.scores.as_ptr()
    };
    out.reasons = if boxed.reasons.is_empty() {
        std::ptr::null()
    } else {
        boxed.reasons.as_ptr()
    };
    out.len = boxed.rows.len();
    out.error = StrRef::new(&boxed.error);
    out.release = Some(release_query);
    out.owner = Box::into_raw(boxed) as *mut c_void;
}

fn plan_answer(out: &mut PlanAnswer, buffers: PlanBuffers) {
    let boxed = Box::new(buffers);
    out.json = StrRef::new(&boxed.json);
    out.error = StrRef::new(&boxed.error);
    out.release = Some(release_plan);
    out.owner = Box::into_raw(boxed) as *mut c_void;
}

/// A query call.
///
/// # Safety
/// The host's pointers must be valid for the call; `out` must point to a writable answer.
pub unsafe fn query<P: QueryPlugin>(
    call: *const CallContext,
    pool: *const PoolView,
    budget: u64,
    seed: u64,
    params_json: StrRef,
    out: *mut QueryAnswer,
) -> i32 {
    let Some(out) = (unsafe { out.as_mut() }) else {
        return STATUS_ERROR;
    };
    quiet_panics();
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<Vec<Pick>, String> {
        // SAFETY: the host's contract.
        let view = unsafe { pool.as_ref() }.ok_or("no pool")?;
        let pool = unsafe { Pool::from_view(view) };
        let host = unsafe { Host::from_call(call) };
        let params = params(params_json)?;
        P::default().select(&pool, budget as usize, seed, &params, &host)
    }));
    let (status, buffers) = match result {
        Ok(Ok(picks)) => (
            STATUS_OK,
            QueryBuffers {
                rows: picks.iter().map(|p| p.row as u64).collect(),
                // Scores only when every pick has one (the host checks each is finite).
                scores: match picks.iter().all(|p| p.score.is_some()) {
                    true => picks.iter().filter_map(|p| p.score).collect(),
                    false => Vec::new(),
                },
                reasons: picks.iter().map(|p| p.reason.code()).collect(),
                error: String::new(),
            },
        ),
        Ok(Err(e)) => (
            STATUS_ERROR,
            QueryBuffers {
                rows: vec![],
                scores: vec![],
                reasons: vec![],
                error: e,
            },
        ),
        Err(p) => (
            STATUS_PANIC,
            QueryBuffers {
                rows: vec![],
                scores: vec![],
                reasons: vec![],
                error: panic_message(p),
            },
        ),
    };
    query_answer(out, buffers);
    status
}

/// A plan call.
///
/// # Safety
/// As [`query`].
pub unsafe fn plan<P: AdaptPlugin>(
    call: *const CallContext,
    state: StrRef,
    params_json: StrRef,
    out: *mut PlanAnswer,
) -> i32 {
    let Some(out) = (unsafe { out.as_mut() }) else {
        return STATUS_ERROR;
    };
    quiet_panics();
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<String, String> {
        // SAFETY: the host's contract.
        let text = unsafe { state.to_str_lossy() };
        let state: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("the state is not JSON: {e}"))?;
        let host = unsafe { Host::from_call(call) };
        let params = params(params_json)?;
        let plan = P::default().plan(&state, &params, &host)?;
        serde_json::to_string(&plan).map_err(|e| e.to_string())
    }));
    let (status, buffers) = match result {
        Ok(Ok(json)) => (
            STATUS_OK,
            PlanBuffers {
                json,
                error: String::new(),
            },
        ),
        Ok(Err(e)) => (
            STATUS_ERROR,
            PlanBuffers {
                json: String::new(),
                error: e,
            },
        ),
        Err(p) => (
            STATUS_PANIC,
            PlanBuffers {
                json: String::new(),
                error: panic_message(p),
            },
        ),
    };
    plan_answer(out, buffers);
    status
}

/// An empty query answer to be filled by a call.
pub fn empty_query_answer() -> QueryAnswer {
    QueryAnswer {
        rows: std::ptr::null(),
        scores: std::ptr::null(),
        reasons: std::ptr::null(),
        len: 0,
        error: StrRef::EMPTY,
        release: None,
        owner: std::ptr::null_mut(),
    }
}

/// An empty plan answer to be filled by a call.
pub fn empty_plan_answer() -> PlanAnswer {
    PlanAnswer {
        json: StrRef::EMPTY,
        error: StrRef::EMPTY,
        release: None,
        owner: std::ptr::null_mut(),
    }
}
