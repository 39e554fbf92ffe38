//! reconnoiter: a chaos and load testing harness for Socket.IO chat servers.
//!
//! The crate is one pipeline (see ARCHITECTURE.md): a scenario file becomes a
//! plan, a run turns the plan into a history of what every simulated user saw,
//! the checker turns the history into a verdict, and the report writes it.
//!
//! - [`cli`]: the command line, turned into one [`cli::Command`] before any work.
//! - [`sio`]: our own Engine.IO v4 / Socket.IO v5 client over WebSocket.
//! - [`server`]: the embedded reference chat server and its bug switches.
//! - [`proxy`]: the embedded Toxiproxy-compatible fault proxy.
//! - [`exit`]: the exit codes CI pipelines gate on.

pub mod cli;
pub mod exit;
pub mod proxy;
pub mod server;
pub mod sio;
