//! The system under test: where it is, what its events and REST paths are
//! called, and (for the embedded default) the server process we manage.

pub mod http;
pub mod managed;
pub mod rest;

pub use managed::ManagedServer;
pub use rest::{Api, ApiError, Session};
