#![no_main]
//! `delinea::fuzz::plugin_descriptor` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| delinea::fuzz::plugin_descriptor(data));
