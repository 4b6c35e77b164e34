//! The host side of native strategy plugins (`plugin:PATH` or `plugin:NAME`, the C ABI of
//! `plugins/api`): the only module with `unsafe` for it.
//!
//! - [`descriptor`]: the file is read, not loaded, and refused unless it is a shared library
//!   for this machine carrying a descriptor of this ABI, full size, built with unwinding
//!   panics — a non-plugin's initialisers never run;
//! - [`load`]: loaded once per real file with every symbol resolved, its table checked, never
//!   unloaded;
//! - [`strategy`]: a plugin as a [`crate::strategy::query::QueryStrategy`] or
//!   [`crate::strategy::adapt::AdaptStrategy`], every answer checked (rows in range, unique,
//!   within budget, finite scores; plans against the schema), each violation naming the plugin;
//! - [`services`]: the engine's services a plugin may call (read a volume, metrics of two
//!   masks, the current model on slices).
//!
//! A name with parameters: `plugin:margin-diverse?per_case=3` (values read as JSON when they
//! parse, else as strings). Plugins are found by name in `--plugin-dir` folders and the
//! folders of `DELINEA_PLUGIN_PATH` (`:`-separated).

#![allow(unsafe_code)]

pub mod descriptor;
pub mod load;
pub mod services;
pub mod strategy;

use std::path::{Path, PathBuf};

pub use descriptor::Info;
pub use services::PluginServices;

/// Why a plugin could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The file is not a usable plugin (refused before loading, or at load).
    #[error("plugin {}: {reason}", .path.display())]
    Refused {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No plugin of that name in the plugin folders.
    #[error("no plugin named {name:?} in {} (found: {})", folders(.searched), if .found.is_empty() { "none".to_string() } else { .found.join(", ") })]
    NotFound {
        /// The name.
        name: String,
        /// The folders searched.
        searched: Vec<PathBuf>,
        /// The plugins found there.
        found: Vec<String>,
    },
    /// `?key=value` parameters that cannot be read.
    #[error("plugin {name}: bad parameters {params:?}: {reason}")]
    Params {
        /// The plugin.
        name: String,
        /// What was given.
        params: String,
        /// Why.
        reason: String,
    },
}

fn folders(dirs: &[PathBuf]) -> String {
    match dirs {
        [] => "no plugin folder (give --plugin-dir or DELINEA_PLUGIN_PATH)".into(),
        _ => dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The plugin folders of `DELINEA_PLUGIN_PATH`, then `extra`.
pub fn plugin_dirs(extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("DELINEA_PLUGIN_PATH")
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    dirs.extend(extra.iter().cloned());
    dirs
}

/// Whether `path` looks like a shared library's file name.
fn is_library(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "so" || e == "dylib")
}

/// Every plugin in `dirs`, by descriptor (read from the files, none loaded), and the files
/// that were refused with why.
pub fn list(dirs: &[PathBuf]) -> (Vec<Info>, Vec<PluginError>) {
    let mut found = Vec::new();
    let mut refused = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_library(p))
            .collect();
        files.sort();
        for f in files {
            match descriptor::read(&f) {
                Ok(info) => found.push(info),
                Err(e) => refused.push(e),
            }
        }
    }
    (found, refused)
}

/// Splits `plugin:` names into the plugin and its parameters: `x?a=1&b=two` gives `x` and
/// `{"a": 1, "b": "two"}`.
pub fn split_params(name: &str) -> Result<(&str, serde_json::Value), PluginError> {
    let Some((plugin, query)) = name.split_once('?') else {
        return Ok((name, serde_json::json!({})));
    };
    let mut params = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(PluginError::Params {
                name: plugin.into(),
                params: query.into(),
                reason: format!("{pair:?} is not key=value"),
            });
        };
        let value = serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.into()));
        params.insert(k.into(), value);
    }
    Ok((plugin, serde_json::Value::Object(params)))
}

/// The file of plugin `reference`: a path (it has a `/` or a library's extension, or exists),
/// else a name looked up in `dirs`.
pub fn locate(reference: &str, dirs: &[PathBuf]) -> Result<PathBuf, PluginError> {
    let path = Path::new(reference);
    if reference.contains('/') || is_library(path) || path.exists() {
        return Ok(path.to_path_buf());
    }
    let (found, _) = list(dirs);
    found
        .iter()
        .find(|i| i.name == reference)
        .map(|i| i.path.clone())
        .ok_or_else(|| PluginError::NotFound {
            name: reference.into(),
            searched: dirs.to_vec(),
            found: found.iter().map(|i| i.name.clone()).collect(),
        })
}
