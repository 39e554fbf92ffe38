//! reconnoiter: a chaos and load testing harness for Socket.IO chat servers.
//!
//! The crate is one pipeline (see ARCHITECTURE.md): a scenario file becomes a
//! plan, a run turns the plan into a history of what every simulated user saw,
//! the checker turns the history into a verdict, and the report writes it.
//!
//! - [`cli`]: the command line, turned into one [`cli::Command`] before any work.
//! - [`sio`]: our own Engine.IO v4 / Socket.IO v5 client over WebSocket.
//! - [`history`]: the append-only record of what every user saw and did.
//! - [`run`]: a plan executed: target, ramp, chat, drain, stop.
//! - [`check`]: the checker: the verdict and latencies, from the history alone.
//! - [`report`]: what a run writes (summary, junit, CSV, .hgrm/.hlog, HTML); show, compare, merge.
//! - [`scenario`]: scenario files, validated into a [`scenario::Plan`].
//! - [`server`]: the embedded reference chat server and its bug switches.
//! - [`user`]: one simulated user (recovery, outbox, token refresh) and its counters;
//!   the client library that owns its connection is a [`user::driver::Driver`]
//!   (native `sio`, or rust_socketio).
//! - [`target`]: the system under test: REST calls, the managed server process.
//! - [`nemesis`]: the fault timeline: cohorts' proxies, restarts, revocations, membership.
//! - [`proxy`]: the embedded Toxiproxy-compatible fault proxy.
//! - [`exit`]: the exit codes CI pipelines gate on.
//! - [`loopback`]: connections to a loopback target spread over source
//!   addresses, so the kernel's ephemeral-port search stays short.

pub mod check;
pub mod children;
pub mod cli;
pub mod exit;
pub mod history;
pub mod loopback;
pub mod nemesis;
pub mod proxy;
pub mod report;
pub mod run;
pub mod scenario;
pub mod server;
pub mod sio;
pub mod target;
pub mod user;
