#![no_main]
use connect_proto::fuzzing::{call_pair, PairScript};
libfuzzer_sys::fuzz_target!(|script: PairScript| call_pair(script));
