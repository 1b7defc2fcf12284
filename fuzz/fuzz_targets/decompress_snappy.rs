#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| connect_proto::fuzzing::decompress_snappy(data));
