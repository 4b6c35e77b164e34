//! The one strategy resolver: every place that accepts a strategy name (the CLI, experiment
//! configs, scripts, and later job files and the watcher) turns it into a strategy here, and
//! nothing downstream knows which front door it came through.
//!
//! - `stdr`, `entropy`, `finetune+pseudo`, … : builtin (Rust);
//! - `script:PATH.rhai`: a Rhai policy (`fn select(pool, budget)` / `fn plan(state)`), run by
//!   the resolver's script host (built once per command or job);
//! - `plugin:PATH` or `plugin:NAME` (found in the plugin folders), with optional
//!   `?key=value&…` parameters: a native plugin through the C ABI of `plugins/api`.

use std::path::Path;
use std::sync::Arc;

use super::adapt::{self, AdaptStrategy};
use super::query::{self, QueryStrategy};
use std::path::PathBuf;

use crate::plugin::services::Table;
use crate::plugin::strategy::{PluginAdapt, PluginQuery};
use crate::plugin::{self, PluginServices};
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

/// Maps strategy names to strategies; scripts run in its host, plugins are found in its
/// folders and reach its services.
#[derive(Debug, Clone)]
pub struct Resolver {
    scripts: Arc<ScriptHost>,
    plugin_dirs: Vec<PathBuf>,
    services: Arc<Table>,
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

    /// A resolver whose scripts run in `host` (a protocol's, a job's); plugins from the
    /// folders of `DELINEA_PLUGIN_PATH`, offered no services.
    pub fn with_host(scripts: Arc<ScriptHost>) -> Resolver {
        Resolver {
            scripts,
            plugin_dirs: plugin::plugin_dirs(&[]),
            services: Table::new(PluginServices::default()),
        }
    }

    /// The same resolver finding plugins by name in the folders of `DELINEA_PLUGIN_PATH` and
    /// `dirs`.
    pub fn with_plugin_dirs(self, dirs: &[PathBuf]) -> Resolver {
        Resolver {
            plugin_dirs: plugin::plugin_dirs(dirs),
            ..self
        }
    }

    /// The same resolver offering plugins `services` (files they may read, the model).
    pub fn with_plugin_services(self, services: PluginServices) -> Resolver {
        Resolver {
            services: Table::new(services),
            ..self
        }
    }

    /// The loaded plugin `reference` names (a path or a name, with `?params`).
    fn plugin(
        &self,
        reference: &str,
    ) -> Result<(&'static plugin::load::Loaded, serde_json::Value), plugin::PluginError> {
        let (file, params) = plugin::split_params(reference)?;
        let path = plugin::locate(file, &self.plugin_dirs)?;
        Ok((plugin::load::load(&path)?, params))
    }

    /// The query strategy `name` names.
    pub fn resolve_query(&self, name: &str) -> Result<Box<dyn QueryStrategy>, query::Error> {
        match FrontDoor::of(name) {
            FrontDoor::Builtin(b) => query::by_name(b),
            FrontDoor::Script(path) => Ok(Box::new(
                ScriptQuery::load(Arc::clone(&self.scripts), path, name).map_err(query::Error::Script)?,
            )),
            FrontDoor::Plugin(_) => {
                let reference = &name["plugin:".len()..];
                let (loaded, params) = self.plugin(reference).map_err(query::Error::Plugin)?;
                Ok(Box::new(PluginQuery::new(
                    loaded,
                    name,
                    &params,
                    Arc::clone(&self.services),
                )?))
            }
        }
    }

    /// The adaptation strategy `name` names.
    pub fn resolve_adapt(&self, name: &str) -> Result<Box<dyn AdaptStrategy>, adapt::Error> {
        match FrontDoor::of(name) {
            FrontDoor::Builtin(b) => adapt::by_name(b),
            FrontDoor::Script(path) => Ok(Box::new(
                ScriptAdapt::load(Arc::clone(&self.scripts), path, name).map_err(adapt::Error::Script)?,
            )),
            FrontDoor::Plugin(_) => {
                let reference = &name["plugin:".len()..];
                let (loaded, params) = self.plugin(reference).map_err(adapt::Error::Plugin)?;
                Ok(Box::new(PluginAdapt::new(
                    loaded,
                    name,
                    &params,
                    Arc::clone(&self.services),
                )?))
            }
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
        assert!(e.contains("libx.so") && e.contains("No such file"), "{e}");
        let e = r
            .clone()
            .with_plugin_dirs(&[])
            .resolve_adapt("plugin:nameless")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("no plugin named \"nameless\""), "{e}");
        let e = r.resolve_query("script:no/such.rhai").err().unwrap().to_string();
        assert!(e.starts_with("no/such.rhai: "), "{e}");
    }
}
