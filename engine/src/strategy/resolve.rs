//! The one strategy resolver: every place that accepts a strategy name (the CLI, experiment
//! configs, scripts, and later job files and the watcher) turns it into a strategy here, and
//! nothing downstream knows which front door it came through.
//!
//! - `stdr`, `entropy`, `finetune+pseudo`, … : builtin (Rust);
//! - `script:PATH.rhai`: a Rhai policy (`fn select(pool, budget)` / `fn plan(state)`), run by
//!   the resolver's script host (built once per command or job);
//! - `plugin:PATH`: a native plugin (reserved: refused until the plugin host exists).

use std::path::Path;
use std::sync::Arc;

use super::adapt::{self, AdaptStrategy};
use super::query::{self, QueryStrategy};
use crate::script::strategy::{ScriptAdapt, ScriptQuery};
use crate::script::{Limits, ScriptHost, Session};

/// Which front door a strategy name opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontDoor<'a> {
    /// A builtin, by name.
    Builtin(&'a str),
    /// A Rhai policy file.
    Script(&'a Path),
    /// A native plugin.
    Plugin(&'a Path),
}

impl<'a> FrontDoor<'a> {
    /// `script:…` and `plugin:…` by their prefix, anything else a builtin name.
    pub fn of(name: &'a str) -> FrontDoor<'a> {
        if let Some(path) = name.strip_prefix("script:") {
            FrontDoor::Script(Path::new(path))
        } else if let Some(path) = name.strip_prefix("plugin:") {
            FrontDoor::Plugin(Path::new(path))
        } else {
            FrontDoor::Builtin(name)
        }
    }
}

/// Maps strategy names to strategies; scripts run in its host.
#[derive(Debug, Clone)]
pub struct Resolver {
    scripts: Arc<ScriptHost>,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::new()
    }
}

impl Resolver {
    /// A resolver whose scripts run in a policy host: no file access (a policy is handed its
    /// data), the CPU, the default limits, log lines on stderr.
    pub fn new() -> Resolver {
        Resolver::with_host(ScriptHost::new(Session::for_policies(), Limits::default()))
    }

    /// A resolver whose scripts run in `host` (a protocol's, a job's).
    pub fn with_host(scripts: Arc<ScriptHost>) -> Resolver {
        Resolver { scripts }
    }

    /// The query strategy `name` names.
    pub fn resolve_query(&self, name: &str) -> Result<Box<dyn QueryStrategy>, query::Error> {
        match FrontDoor::of(name) {
            FrontDoor::Builtin(b) => query::by_name(b),
            FrontDoor::Script(path) => Ok(Box::new(
                ScriptQuery::load(Arc::clone(&self.scripts), path, name).map_err(query::Error::Script)?,
            )),
            FrontDoor::Plugin(path) => Err(query::Error::Plugin {
                path: path.to_path_buf(),
            }),
        }
    }

    /// The adaptation strategy `name` names.
    pub fn resolve_adapt(&self, name: &str) -> Result<Box<dyn AdaptStrategy>, adapt::Error> {
        match FrontDoor::of(name) {
            FrontDoor::Builtin(b) => adapt::by_name(b),
            FrontDoor::Script(path) => Ok(Box::new(
                ScriptAdapt::load(Arc::clone(&self.scripts), path, name).map_err(adapt::Error::Script)?,
            )),
            FrontDoor::Plugin(path) => Err(adapt::Error::Plugin {
                path: path.to_path_buf(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_open_their_front_door() {
        assert_eq!(FrontDoor::of("stdr"), FrontDoor::Builtin("stdr"));
        assert_eq!(
            FrontDoor::of("script:a/b.rhai"),
            FrontDoor::Script(Path::new("a/b.rhai"))
        );
        assert_eq!(FrontDoor::of("plugin:libx.so"), FrontDoor::Plugin(Path::new("libx.so")));
        let r = Resolver::new();
        assert_eq!(r.resolve_query("entropy").unwrap().name(), "entropy");
        assert_eq!(r.resolve_adapt("finetune").unwrap().name(), "finetune");
        let e = r.resolve_query("plugin:libx.so").err().unwrap().to_string();
        assert!(e.contains("libx.so") && e.contains("not built yet"), "{e}");
        let e = r.resolve_adapt("plugin:libx.so").err().unwrap().to_string();
        assert!(e.contains("not built yet"), "{e}");
        let e = r.resolve_query("script:no/such.rhai").err().unwrap().to_string();
        assert!(e.starts_with("no/such.rhai: "), "{e}");
    }
}
