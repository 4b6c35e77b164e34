//! Test fixture: a shared library with no delinea descriptor whose initialiser (run by the
//! dynamic loader when the library is loaded) creates the file named by
//! `DELINEA_TEST_INIT_MARKER`. delinea must refuse it without loading it: no marker.
#![allow(unsafe_code)]

extern "C" fn mark() {
    if let Some(path) = std::env::var_os("DELINEA_TEST_INIT_MARKER") {
        let _ = std::fs::write(path, b"the initialiser ran");
    }
}

#[used]
#[unsafe(link_section = ".init_array")]
static INIT: extern "C" fn() = mark;

/// Something to export.
#[unsafe(no_mangle)]
pub extern "C" fn not_a_plugin() -> i32 {
    42
}
