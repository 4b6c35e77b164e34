//! `delinea run SCRIPT.rhai`: a whole protocol as a script. The script's top-level statements
//! run once, with a constant map `params` of the `--set key=value` pairs (numbers and `true` /
//! `false` parsed, everything else a string), files reachable only inside the `--allow`
//! folders, models on `--device`, and what the script returns printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rhai::{Dynamic, Map, Scope};

use super::{Limits, Sandbox, ScriptError, ScriptHost, Session};
use crate::device::Device;

/// How a protocol runs.
#[derive(Debug, Clone)]
pub struct ProtocolOptions {
    /// The script.
    pub script: PathBuf,
    /// `key=value` pairs for `params`.
    pub sets: Vec<String>,
    /// Folders the script may read and write.
    pub allow: Vec<PathBuf>,
    /// Where paths are read from (the working folder).
    pub base: PathBuf,
    /// Where models run.
    pub device: Device,
    /// The seed of `rand()` and of every selection the script makes.
    pub seed: u64,
    /// Wall-clock limit of the whole run.
    pub deadline: Duration,
}

/// Why a protocol could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A `--set` that is not `key=value`, or a key given twice.
    #[error("--set {0:?}: {1}")]
    Set(String, String),
    /// An `--allow` folder that cannot be used.
    #[error("{0}")]
    Allow(String),
    /// The script failed.
    #[error(transparent)]
    Script(#[from] ScriptError),
}

/// The `params` map of `sets`.
pub fn params(sets: &[String]) -> Result<Map, ProtocolError> {
    let mut map = Map::new();
    for set in sets {
        let Some((key, value)) = set.split_once('=') else {
            return Err(ProtocolError::Set(set.clone(), "expected key=value".into()));
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ProtocolError::Set(set.clone(), "a key is letters, digits and _".into()));
        }
        let value = value.trim();
        let v = if let Ok(i) = value.parse::<rhai::INT>() {
            Dynamic::from(i)
        } else if let Ok(f) = value.parse::<rhai::FLOAT>() {
            Dynamic::from(f)
        } else if let Ok(b) = value.parse::<bool>() {
            Dynamic::from(b)
        } else {
            Dynamic::from(value.to_string())
        };
        if map.insert(key.into(), v).is_some() {
            return Err(ProtocolError::Set(set.clone(), format!("{key} is set twice")));
        }
    }
    Ok(map)
}

/// Runs the protocol; its result (`()` when it returns nothing) and its host's log go where
/// `log` sends them.
pub fn run(options: &ProtocolOptions, log: impl Fn(&str) + Send + Sync + 'static) -> Result<Dynamic, ProtocolError> {
    let params = params(&options.sets)?;
    let sandbox = Sandbox::new(&options.allow, &options.base).map_err(ProtocolError::Allow)?;
    let limits = Limits {
        deadline: options.deadline,
        ..Limits::default()
    };
    let host = ScriptHost::new(Session::new(sandbox, options.device, log), limits);
    let mut scope = Scope::new();
    scope.push_constant("params", params);
    let script = host.compile_in(&options.script, &scope)?;
    Ok(host.run(&script, &mut scope, options.seed)?)
}

/// A protocol's `params` as a scope, for checking a script compiles (`delinea run --check`).
pub fn check(path: &Path, sets: &[String]) -> Result<(), ProtocolError> {
    let mut scope = Scope::new();
    scope.push_constant("params", params(sets)?);
    let host = ScriptHost::new(Session::for_policies(), Limits::default());
    host.compile_in(path, &scope)?;
    Ok(())
}
