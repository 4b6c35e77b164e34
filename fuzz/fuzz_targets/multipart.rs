#![no_main]
//! `delinea::fuzz::multipart` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| delinea::fuzz::multipart(data));
