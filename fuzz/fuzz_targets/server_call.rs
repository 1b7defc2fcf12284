#![no_main]
use connect_proto::fuzzing::{server_call, ServerScript};
libfuzzer_sys::fuzz_target!(|script: ServerScript| server_call(script));
