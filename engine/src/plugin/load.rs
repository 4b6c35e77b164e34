//! Loading a checked plugin: once per real file (symlinks lead to the same instance), with
//! every symbol resolved at load (`RTLD_NOW`, so a missing one fails here, not at its first
//! call), its function table checked against its descriptor, and never unloaded (thread-local
//! destructors of an unloaded library would run into unmapped code at thread exit).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use delinea_plugin_api::abi::{self, EntryFn, PluginTable, ABI_MAJOR, KIND_ADAPT, KIND_QUERY};

use super::descriptor::{self, Info};
use super::PluginError;

/// A loaded plugin: its descriptor and function table (the library stays mapped for the
/// life of the process).
#[derive(Debug)]
pub struct Loaded {
    /// What its descriptor says.
    pub info: Info,
    /// Its functions.
    pub table: PluginTable,
}

// SAFETY: the table holds plain function pointers into a library that is never unloaded; the
// ABI requires the plugin's functions to be callable from any thread.
unsafe impl Send for Loaded {}
// SAFETY: as above; nothing in `Loaded` is mutated after loading.
unsafe impl Sync for Loaded {}

fn registry() -> &'static Mutex<HashMap<PathBuf, &'static Loaded>> {
    static LOADED: OnceLock<Mutex<HashMap<PathBuf, &'static Loaded>>> = OnceLock::new();
    LOADED.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The plugin at `path`: checked from its file first, loaded once, its table checked.
pub fn load(path: &Path) -> Result<&'static Loaded, PluginError> {
    let real = path.canonicalize().map_err(|e| PluginError::Refused {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut loaded = registry().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = loaded.get(&real) {
        return Ok(l);
    }
    let info = descriptor::read(&real)?;
    let table = open(&real, &info)?;
    let l: &'static Loaded = Box::leak(Box::new(Loaded { info, table }));
    loaded.insert(real, l);
    Ok(l)
}

/// Opens the library (never closed) and reads its table.
fn open(path: &Path, info: &Info) -> Result<PluginTable, PluginError> {
    let bad = |reason: String| PluginError::Refused {
        path: path.to_path_buf(),
        reason,
    };
    // SAFETY: loading runs the library's initialisers; its descriptor (read from the file
    // without loading) says it is a delinea plugin of this ABI built with unwinding panics,
    // which is the trust the user gave by naming it. RTLD_NOW resolves every symbol now.
    let library = unsafe {
        libloading::os::unix::Library::open(
            Some(path),
            libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL,
        )
    }
    .map_err(|e| bad(format!("cannot load it: {e}")))?;
    // SAFETY: the ABI fixes the entry's type (`EntryFn`); the symbol's presence is checked.
    let entry = unsafe { library.get::<EntryFn>(abi::ENTRY.as_bytes()) }
        .map_err(|e| bad(format!("it has no entry function {}: {e}", abi::ENTRY)))?;
    // SAFETY: calling the plugin's entry, which returns a pointer to its static table (or
    // null); the SDK's entry cannot unwind.
    let table = unsafe { entry() };
    // SAFETY: a non-null table pointer points to the plugin's static table (never unloaded).
    let table = unsafe { table.as_ref() }.ok_or_else(|| bad("its entry returned no function table".into()))?;
    check_table(table, info).map_err(bad)?;
    let table = *table;
    // Never unload: keep the library mapped for the life of the process.
    std::mem::forget(library);
    Ok(table)
}

/// The table agrees with the descriptor: size, ABI, kind, the kind's function present.
fn check_table(table: &PluginTable, info: &Info) -> Result<(), String> {
    if (table.size as usize) < std::mem::size_of::<PluginTable>() {
        return Err(format!(
            "its function table is {} bytes, this delinea reads {}",
            table.size,
            std::mem::size_of::<PluginTable>()
        ));
    }
    if table.abi_major != ABI_MAJOR {
        return Err(format!(
            "its function table says ABI {}, its descriptor {}",
            table.abi_major, info.abi
        ));
    }
    if table.kind != info.kind_code() {
        return Err(format!(
            "its function table is of kind {}, its descriptor says {}",
            table.kind, info.kind
        ));
    }
    match table.kind {
        KIND_QUERY if table.query.is_none() => Err("a query plugin without a query function".into()),
        KIND_ADAPT if table.plan.is_none() => Err("an adaptation plugin without a plan function".into()),
        _ => Ok(()),
    }
}
