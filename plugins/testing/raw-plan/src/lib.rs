//! Test fixture: the ABI written by hand (what the SDK prevents), answering every plan call
//! with text that is not JSON, so that the host's check of a plan can be seen to hold.
#![allow(unsafe_code)]

use delinea_plugin_api::abi::{self, CallContext, PlanAnswer, PluginTable, StrRef};

#[used]
#[unsafe(no_mangle)]
#[unsafe(link_section = ".delinea_plugin")]
pub static DELINEA_PLUGIN_DESCRIPTOR: abi::Descriptor =
    delinea_plugin_api::descriptor(abi::KIND_ADAPT, cfg!(panic = "unwind"), 0, "raw-plan", "0.1.0", "{}");

static NOT_JSON: &str = "{ this is not a plan";

unsafe extern "C" fn plan(_call: *const CallContext, _state: StrRef, _params: StrRef, out: *mut PlanAnswer) -> i32 {
    // SAFETY: the host passes a writable answer; the text is static (nothing to release).
    if let Some(out) = unsafe { out.as_mut() } {
        out.json = StrRef::new(NOT_JSON);
        out.release = None;
    }
    abi::STATUS_OK
}

#[unsafe(no_mangle)]
pub extern "C" fn delinea_plugin_entry_v1() -> *const PluginTable {
    static TABLE: PluginTable = PluginTable {
        size: std::mem::size_of::<PluginTable>() as u32,
        abi_major: abi::ABI_MAJOR,
        kind: abi::KIND_ADAPT,
        query: None,
        plan: Some(plan),
    };
    &TABLE
}
