#![no_main]
libfuzzer_sys::fuzz_target!(|s: connect_proto::fuzzing::ServerScript| connect_proto::fuzzing::server_call(s));
