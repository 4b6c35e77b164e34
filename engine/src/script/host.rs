//! The one place a Rhai engine is built and its limits set ([`ScriptHost::new`]), once per
//! command or job, shared by every script and call of it.
//!
//! What a script can do: the language (no `eval`, no `import`, strict variables: a typo is a
//! compile error), the packages of arithmetic, logic, strings, arrays and maps, and delinea's
//! own functions ([`super::api`]). What stops it: an operations limit, call and expression
//! depth, string, array and map sizes, and a wall-clock deadline per call checked at every
//! operation, including those of closures called from native functions (which Rhai 1.27 leaves
//! out of the operations count). Once tripped, a call's cancellation stays set, so a native
//! function that swallows an error (Rhai's own `sort` with a closure does) cannot let the
//! script go on.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use rhai::packages::{
    BasicArrayPackage, BasicMapPackage, BasicMathPackage, BasicStringPackage, CorePackage, LogicPackage,
    MoreStringPackage, Package,
};
use rhai::{Dynamic, Engine, EvalAltResult, FuncArgs, Position, Scope, AST};

use super::{Sandbox, ScriptError};
use crate::device::Device;
use crate::rng::Rng;

/// The limits of every script run by a host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Operations per call. 2 000 000 000 (about a minute of work; a per-row policy on
    /// 100 000 rows takes about 2 000 000).
    pub max_operations: u64,
    /// Nested function calls. 64.
    pub max_call_levels: usize,
    /// Expression nesting, at the top level and inside functions. 128 and 64.
    pub max_expr_depths: (usize, usize),
    /// Characters in a string. 10 000 000.
    pub max_string_size: usize,
    /// Elements in an array. 10 000 000 (ten times a million-row pool).
    pub max_array_size: usize,
    /// Entries in a map. 1 000 000.
    pub max_map_size: usize,
    /// Wall-clock time of one call (a policy's `select`, a whole protocol). 60 s.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 2_000_000_000,
            max_call_levels: 64,
            max_expr_depths: (128, 64),
            max_string_size: 10_000_000,
            max_array_size: 10_000_000,
            max_map_size: 1_000_000,
            deadline: Duration::from_secs(60),
        }
    }
}

/// What the scripts of one command or job may reach: files (through the sandbox), the
/// compute device, the seed, and where their log lines go.
pub struct Session {
    /// The folders scripts may read and write.
    pub sandbox: Sandbox,
    /// The device models run on.
    pub device: Device,
    /// The seed of `rand()` and friends, reset at every call from the call's seed.
    rng: Mutex<Rng>,
    /// Where `log(...)` and `print(...)` lines go.
    log: Box<dyn Fn(&str) + Send + Sync>,
    /// The host running this session's scripts (a script's `select` resolves strategies, a
    /// `script:` one included, with it).
    host: OnceLock<Weak<ScriptHost>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("sandbox", &self.sandbox)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session reaching the files of `sandbox`, computing on `device`, logging to `log`.
    pub fn new(sandbox: Sandbox, device: Device, log: impl Fn(&str) + Send + Sync + 'static) -> Session {
        Session {
            sandbox,
            device,
            rng: Mutex::new(Rng::new(0)),
            log: Box::new(log),
            host: OnceLock::new(),
        }
    }

    /// The strategy resolver of this session's host.
    pub fn resolver(&self) -> Result<crate::strategy::Resolver, Box<EvalAltResult>> {
        let host = self.host.get().and_then(Weak::upgrade);
        host.map(crate::strategy::Resolver::with_host)
            .ok_or_else(|| "this session has no script host".into())
    }

    /// No files, the CPU, logs to stderr: what a query policy in a command needs.
    pub fn for_policies() -> Session {
        #[allow(clippy::print_stderr)]
        Session::new(Sandbox::none(), Device::Cpu, |line| eprintln!("script: {line}"))
    }

    /// Writes one log line.
    pub fn log(&self, line: &str) {
        (self.log)(line)
    }

    /// Runs `f` with the session's generator.
    pub fn with_rng<T>(&self, f: impl FnOnce(&mut Rng) -> T) -> T {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut rng)
    }

    fn reseed(&self, seed: u64) {
        self.with_rng(|r| *r = Rng::derive(seed, &[0x7363_7269_7074]));
    }
}

thread_local! {
    /// The deadline of the call running on this thread, if any.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// Set once the running call passed its deadline; stays set until the call returns.
    static TRIPPED: Cell<bool> = const { Cell::new(false) };
}

/// The value a terminated script carries, naming why.
const DEADLINE_TOKEN: &str = "deadline";

/// A compiled script: its file and syntax tree.
#[derive(Debug, Clone)]
pub struct Script {
    /// The file.
    pub path: PathBuf,
    /// The syntax tree (its source set to the path, so errors name the file).
    pub ast: AST,
}

impl Script {
    /// Whether the script defines `name` with `arity` parameters.
    pub fn defines(&self, name: &str, arity: usize) -> bool {
        self.ast
            .iter_functions()
            .any(|f| f.name == name && f.params.len() == arity)
    }
}

/// The sandboxed engine of one command or job.
pub struct ScriptHost {
    engine: Engine,
    session: Arc<Session>,
    limits: Limits,
}

impl std::fmt::Debug for ScriptHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptHost")
            .field("session", &self.session)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ScriptHost {
    /// Builds the engine: the only place limits are set.
    pub fn new(session: Session, limits: Limits) -> Arc<ScriptHost> {
        let session = Arc::new(session);
        let mut engine = Engine::new_raw();
        for package in [
            CorePackage::new().as_shared_module(),
            LogicPackage::new().as_shared_module(),
            BasicMathPackage::new().as_shared_module(),
            BasicStringPackage::new().as_shared_module(),
            MoreStringPackage::new().as_shared_module(),
            BasicArrayPackage::new().as_shared_module(),
            BasicMapPackage::new().as_shared_module(),
        ] {
            engine.register_global_module(package);
        }
        // delinea's functions last: they come first in lookup, so its `sort` and friends
        // replace the package's (which swallow comparator errors).
        super::api::register(&mut engine);
        engine.disable_symbol("eval");
        engine.set_max_modules(0);
        engine.set_strict_variables(true);
        engine.set_max_operations(limits.max_operations);
        engine.set_max_call_levels(limits.max_call_levels);
        engine.set_max_expr_depths(limits.max_expr_depths.0, limits.max_expr_depths.1);
        engine.set_max_string_size(limits.max_string_size);
        engine.set_max_array_size(limits.max_array_size);
        engine.set_max_map_size(limits.max_map_size);
        engine.on_progress(|_| {
            let late = DEADLINE.with(|d| d.get().is_some_and(|d| Instant::now() >= d));
            if late {
                TRIPPED.with(|t| t.set(true));
            }
            TRIPPED.with(Cell::get).then(|| Dynamic::from(DEADLINE_TOKEN))
        });
        let log = Arc::clone(&session);
        engine.on_print(move |text| log.log(text));
        let debug = Arc::clone(&session);
        engine.on_debug(move |text, _, _| debug.log(text));
        engine.set_default_tag(Dynamic::from(Arc::clone(&session)));
        let host = Arc::new(ScriptHost {
            engine,
            session,
            limits,
        });
        let _ = host.session.host.set(Arc::downgrade(&host));
        host
    }

    /// The session scripts of this host reach.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The engine (for its signature list).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Reads and compiles a script file; a syntax error (an undefined variable included) is
    /// `path:line:col: message`.
    pub fn compile(&self, path: &Path) -> Result<Script, ScriptError> {
        self.compile_in(path, &Scope::new())
    }

    /// Reads and compiles a script that runs with `scope`'s variables (a protocol's
    /// `params`): they count as defined under strict variables.
    pub fn compile_in(&self, path: &Path, scope: &Scope) -> Result<Script, ScriptError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScriptError::file(path, &e.to_string()))?;
        let mut ast = self.engine.compile_with_scope(scope, &text).map_err(|e| {
            let message = e.err_type().to_string();
            ScriptError::at(path, e.position(), message)
        })?;
        ast.set_source(path.display().to_string());
        Ok(Script {
            path: path.to_path_buf(),
            ast,
        })
    }

    /// Calls the script's function `name` with `args` within the deadline, `rand()` seeded
    /// from `seed`.
    pub fn call(&self, script: &Script, name: &str, args: impl FuncArgs, seed: u64) -> Result<Dynamic, ScriptError> {
        self.within_deadline(script, seed, || {
            self.engine
                .call_fn::<Dynamic>(&mut Scope::new(), &script.ast, name, args)
        })
    }

    /// Runs the script's top-level statements with `scope` (a protocol), within the deadline
    /// of this host (give a protocol host a long one).
    pub fn run(&self, script: &Script, scope: &mut Scope, seed: u64) -> Result<Dynamic, ScriptError> {
        self.within_deadline(script, seed, || {
            self.engine.eval_ast_with_scope::<Dynamic>(scope, &script.ast)
        })
    }

    /// Runs `f` with `rand()` reseeded and the deadline set; an error (or a result reached
    /// after the deadline tripped, its error swallowed somewhere) as `path:line:col: message`.
    fn within_deadline(
        &self,
        script: &Script,
        seed: u64,
        f: impl FnOnce() -> Result<Dynamic, Box<EvalAltResult>>,
    ) -> Result<Dynamic, ScriptError> {
        self.session.reseed(seed);
        let _call = Deadline::start(self.limits.deadline);
        let result = f();
        match result {
            Ok(_) if TRIPPED.with(Cell::get) => Err(self.deadline_error(script, Position::NONE)),
            Ok(v) => Ok(v),
            Err(e) => Err(self.error(script, &e)),
        }
    }

    /// `path:line:col: message` of an evaluation error: the innermost position (an error
    /// inside a called function is reported where it happened, with the call chain).
    fn error(&self, script: &Script, e: &EvalAltResult) -> ScriptError {
        let mut calls = Vec::new();
        let mut inner = e;
        let mut position = e.position();
        let mut source = String::new();
        while let EvalAltResult::ErrorInFunctionCall(name, src, err, pos) = inner {
            if !rhai_anonymous(name) {
                calls.push(format!("in {name}()"));
            } else {
                calls.push("in a closure".to_string());
            }
            if !pos.is_none() {
                position = *pos;
            }
            if !src.is_empty() {
                source = src.clone();
            }
            inner = err;
        }
        if !inner.position().is_none() {
            position = inner.position();
        }
        let path = if source.is_empty() {
            script.path.clone()
        } else {
            PathBuf::from(source)
        };
        let message = match inner {
            EvalAltResult::ErrorTerminated(..) => return self.deadline_error(script, position),
            EvalAltResult::ErrorTooManyOperations(..) => format!(
                "stopped after {} operations (the limit of one call)",
                self.limits.max_operations
            ),
            EvalAltResult::ErrorStackOverflow(..) => format!(
                "more than {} nested function calls (runaway recursion?)",
                self.limits.max_call_levels
            ),
            EvalAltResult::ErrorRuntime(value, _) => match value.clone().into_string() {
                Ok(text) => text,
                Err(_) => format!("the script threw {value}"),
            },
            other => {
                // The message without the " (line l, position c)" Rhai appends.
                let text = other.to_string();
                let at = format!(" ({})", other.position());
                text.strip_suffix(&at).unwrap_or(&text).to_string()
            }
        };
        let message = match calls.is_empty() {
            true => message,
            false => format!("{message} ({})", calls.join(", ")),
        };
        ScriptError::at(&path, position, message)
    }

    fn deadline_error(&self, script: &Script, position: Position) -> ScriptError {
        ScriptError::at(
            &script.path,
            position,
            format!(
                "stopped: the call ran past its deadline of {:.1} s",
                self.limits.deadline.as_secs_f64()
            ),
        )
    }
}

fn rhai_anonymous(name: &str) -> bool {
    name.starts_with("anon$")
}

/// The deadline of the call in hand on this thread, cleared (and the cancellation reset) when
/// the call returns.
struct Deadline {
    previous: Option<Instant>,
}

impl Deadline {
    fn start(limit: Duration) -> Deadline {
        let previous = DEADLINE.with(|d| d.replace(Some(Instant::now() + limit)));
        if previous.is_none() {
            TRIPPED.with(|t| t.set(false));
        }
        Deadline { previous }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(self.previous));
        if self.previous.is_none() {
            TRIPPED.with(|t| t.set(false));
        }
    }
}

/// The session of the call in hand, from a native function's context.
pub(super) fn session(ctx: &rhai::NativeCallContext) -> Result<Arc<Session>, Box<EvalAltResult>> {
    ctx.tag()
        .and_then(|t| t.clone().try_cast::<Arc<Session>>())
        .ok_or_else(|| "delinea's functions need the engine's session".into())
}

/// Whether the call in hand has been cancelled (a native function that runs script callbacks
/// checks it, so a swallowed termination still stops the script).
pub(super) fn cancelled() -> bool {
    TRIPPED.with(Cell::get)
}
