//! Scripts: selection policies, adaptation plans and whole protocols written in Rhai by the
//! people who run delinea (`--strategy script:PATH.rhai`, `delinea run SCRIPT.rhai`).
//!
//! - [`ScriptHost`] ([`host`]) builds the one sandboxed engine of a command or job, with every
//!   limit, the wall-clock deadline and the sticky cancellation;
//! - [`Sandbox`] ([`sandbox`]) confines file access to the folders the command names;
//! - [`api`] registers what scripts call — candidate pools as columns, numeric vectors,
//!   volumes and label maps, models, metrics and statistics, seeded random numbers, logging —
//!   once, as an exported module whose signatures and doc comments `scripts/README.md` lists;
//! - [`strategy`] makes a policy file a [`crate::strategy::query::QueryStrategy`] (its
//!   `fn select(pool, budget)`) or an [`crate::strategy::adapt::AdaptStrategy`] (its
//!   `fn plan(state)`), checking what the script returns;
//! - [`protocol`] runs a whole script with `--set` parameters (`delinea run`).
//!
//! Every error a script causes — syntax, runtime, type, limit, deadline, inside a called
//! function — is a [`ScriptError`]: `path:line:col: message`.

pub mod api;
mod host;
pub mod protocol;
mod sandbox;
pub mod strategy;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use host::{Limits, Script, ScriptHost, Session};
pub use sandbox::Sandbox;

/// Where a script went wrong and what happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ScriptError {
    /// The script file.
    pub path: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What happened.
    pub message: String,
}

impl ScriptError {
    /// An error at a Rhai position of `path`.
    pub fn at(path: &Path, position: rhai::Position, message: impl Into<String>) -> ScriptError {
        ScriptError {
            path: path.to_path_buf(),
            line: position.line(),
            column: position.position(),
            message: message.into(),
        }
    }

    /// An error about the file as a whole (unreadable, or what it returned).
    pub fn file(path: &Path, message: &str) -> ScriptError {
        ScriptError {
            path: path.to_path_buf(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// `path:line:col: message` (`path: message` without a position).
    fn render(&self) -> String {
        let path = self.path.display();
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{path}:{l}:{c}: {}", self.message),
            (Some(l), None) => format!("{path}:{l}: {}", self.message),
            _ => format!("{path}: {}", self.message),
        }
    }
}
