//! `delinea serve`: the MONAI Label protocol (0.8.x, as 3D Slicer's MONAILabel module and the
//! `monailabel` Python client speak it) over the drop folder's job state.
//!
//! This is a door, not a second engine: the job state is the watcher's (`watch/`: one journal,
//! one lock, the same pool, labels, `revisions.csv` and model generations), and every act
//! (rank, predict, register a label, adapt) is answered by the watcher's own thread with the
//! functions the drop folder uses. This module only speaks HTTP: it checks ids and tokens,
//! reads requests, asks the watcher ([`crate::watch::Ask`]) or reads its board, and writes
//! MONAI Label's replies.
//!
//! ```text
//! routes.rs   the routes, each: parse, ask or read the board, reply
//! monai.rs    MONAI Label's JSON shapes (info, datastore, train tasks) from the board
//! http.rs     errors as {"detail"}, the bearer token, uploads to disk, multipart replies
//! ```

pub(crate) mod http;
mod monai;
mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use burn::tensor::backend::AutodiffBackend;

use crate::watch::{self, Board, DoorSetup, Log, Summary, WatchError, WatchOptions};

/// How the server listens and what it allows.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to listen. Default 127.0.0.1:8000.
    pub bind: SocketAddr,
    /// The bearer token every request but `/auth/` must carry; required off loopback.
    pub token: Option<String>,
    /// The largest request body taken (an uploaded label), in bytes.
    pub max_upload: usize,
    /// How long a sample handed to one client is not handed to another.
    pub lease: Duration,
    /// Concurrent parts of a prediction batch.
    pub parts: usize,
    /// The delinea executable adaptations run in.
    pub worker: PathBuf,
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// An address other than loopback without a token.
    #[error("--bind {0}: listening beyond this machine needs --token-file (a bearer token every client sends)")]
    Unprotected(SocketAddr),
    /// The address cannot be listened on.
    #[error("--bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The job state.
    #[error(transparent)]
    Watch(#[from] WatchError),
}

/// What every route shares.
#[derive(Clone)]
pub(crate) struct Shared {
    asker: watch::Asker,
    board: Arc<RwLock<Board>>,
    token: Option<Arc<str>>,
    uploads: PathBuf,
    state: PathBuf,
    max_upload: usize,
}

/// Serves until `stop` is set (SIGTERM, Ctrl-C): the watcher runs on this thread, HTTP on a
/// runtime of its own.
pub fn run<B: AutodiffBackend>(
    serve: ServeOptions,
    watch: WatchOptions,
    device: B::Device,
    stop: Arc<AtomicBool>,
    log: Log,
) -> Result<Summary, ServeError> {
    if serve.token.is_none() && !serve.bind.ip().is_loopback() {
        return Err(ServeError::Unprotected(serve.bind));
    }
    let bind_err = |source| ServeError::Bind {
        addr: serve.bind,
        source,
    };
    let listener = std::net::TcpListener::bind(serve.bind).map_err(bind_err)?;
    listener.set_nonblocking(true).map_err(bind_err)?;
    let uploads = watch.state.join("uploads");
    // Uploads a killed server left half-read: never registered, so nothing is lost.
    let _ = std::fs::remove_dir_all(&uploads);
    std::fs::create_dir_all(&uploads).map_err(|source| WatchError::Io {
        path: uploads.clone(),
        source,
    })?;
    let (asker, asks) = watch::door_channel();
    let board = Arc::new(RwLock::new(Board::default()));
    let shared = Shared {
        asker,
        board: Arc::clone(&board),
        token: serve.token.as_deref().map(Arc::from),
        uploads,
        state: watch.state.clone(),
        max_upload: serve.max_upload,
    };
    let http = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || routes::serve(listener, shared, stop)
    });
    let setup = DoorSetup {
        asks,
        board,
        lease: serve.lease,
        parts: serve.parts,
        worker: serve.worker,
    };
    (log)(&serde_json::json!({"serving": serve.bind.to_string(), "auth": serve.token.is_some()}));
    let summary = watch::run_with_door::<B>(watch, device, Arc::clone(&stop), log, Some(setup));
    stop.store(true, Ordering::Relaxed);
    let served = http.join();
    let summary = summary?;
    match served {
        Ok(Ok(())) => Ok(summary),
        Ok(Err(source)) => Err(bind_err(source)),
        Err(_) => Err(bind_err(std::io::Error::other("the HTTP thread panicked"))),
    }
}
