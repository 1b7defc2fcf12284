#![no_main]
use connect_proto::fuzzing::{client_call, ClientScript};
libfuzzer_sys::fuzz_target!(|script: ClientScript| client_call(script));
