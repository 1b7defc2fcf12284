#![no_main]
libfuzzer_sys::fuzz_target!(|s: connect_proto::fuzzing::PairScript| connect_proto::fuzzing::call_pair(s));
