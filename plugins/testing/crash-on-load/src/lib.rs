//! Test fixture: passes every check made from the file, then aborts the process that calls
//! its entry function — what `delinea plugins inspect` must survive (it loads in a child).
#![allow(unsafe_code)]

use delinea_plugin_api::abi::{self, PluginTable};

#[used]
#[unsafe(no_mangle)]
#[unsafe(link_section = ".delinea_plugin")]
pub static DELINEA_PLUGIN_DESCRIPTOR: abi::Descriptor = delinea_plugin_api::descriptor(
    abi::KIND_QUERY,
    cfg!(panic = "unwind"),
    0,
    "crash-on-load",
    "0.1.0",
    "{}",
);

#[unsafe(no_mangle)]
pub extern "C" fn delinea_plugin_entry_v1() -> *const PluginTable {
    std::process::abort()
}
