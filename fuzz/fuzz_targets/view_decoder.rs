#![no_main]
// The request decoder connect-build generates for a batch-shaped message decodes what buffa's view
// decoder decodes and rejects what it rejects (connect-build-tests' `acme.batch.v1.Batch`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(why) = connect_build_tests::view_decoder::compare(data) {
        panic!("{why}");
    }
});
