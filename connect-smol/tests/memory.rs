//! What idle connections cost the smol server (connect-testkit's memory checks), alone in this test
//! binary so that no other test's memory is counted.

mod common;

connect_testkit::memory_tests!(common::Smol::default(), smol::block_on);
