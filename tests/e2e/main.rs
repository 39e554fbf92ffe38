//! Every end-to-end test, in one test binary.
//!
//! Each file under `tests/` used to be a binary of its own, and each linked
//! the whole crate and its dependencies again and compiled its own copies of
//! their generic code: fourteen of them were a quarter of CI's compile time.
//! As modules of one binary they are compiled and linked once, and the test
//! harness keeps both cores busy across files instead of idling at the end of
//! each. Run one file's tests with `cargo test --profile ci --test e2e scenarios::`.

mod common;
mod proxy_support;
mod report_support;

mod blackhole;
mod driver_rust_socketio;
mod faults_e2e;
mod interop;
mod proxy_api;
mod proxy_cli;
mod proxy_toxics;
mod report_cli;
mod report_files;
mod run_cli;
mod run_e2e;
mod scenarios;
mod seqless;
mod server;
mod server_bugs;
mod shards;
mod verdict_bugs;
