#![no_main]
//! `delinea::fuzz::dicom_series` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| delinea::fuzz::dicom_series(data));
