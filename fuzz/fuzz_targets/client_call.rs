#![no_main]
libfuzzer_sys::fuzz_target!(|s: connect_proto::fuzzing::ClientScript| connect_proto::fuzzing::client_call(s));
