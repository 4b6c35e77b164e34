#![no_main]
//! An RTSTRUCT read onto the DICOM sphere fixture's series (`delinea::fuzz::rtstruct`).

libfuzzer_sys::fuzz_target!(
    init: {
        let series = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/dicom/sphere");
        delinea::fuzz::set_rtstruct_series(std::path::Path::new(series)).expect("the sphere fixture reads");
    },
    |data: &[u8]| delinea::fuzz::rtstruct(data)
);
