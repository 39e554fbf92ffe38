//! The exit codes of DESIGN.md. CI pipelines gate releases on these, so they
//! are one enum with fixed numbers rather than literals spread over the code.

/// How a reconnoiter process ends, as the number a CI job sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every check and threshold held.
    Pass = 0,
    /// A delivery or security guarantee was violated.
    Violation = 1,
    /// The scenario file or the command line is wrong.
    BadInput = 2,
    /// A latency or rate threshold was missed.
    Threshold = 3,
    /// The harness could not do its job (target unreachable, proxy failed, saturated).
    Harness = 4,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// An error that knows which exit code it deserves. The CLI edge maps any
/// other `anyhow` error to [`Exit::Harness`].
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExitError {
    pub exit: Exit,
    pub message: String,
}

impl ExitError {
    pub fn bad_input(message: impl Into<String>) -> Self {
        ExitError {
            exit: Exit::BadInput,
            message: message.into(),
        }
    }
    pub fn harness(message: impl Into<String>) -> Self {
        ExitError {
            exit: Exit::Harness,
            message: message.into(),
        }
    }
}

/// The exit code for an error that reached `main`.
pub fn code_for(err: &anyhow::Error) -> Exit {
    err.chain()
        .find_map(|e| e.downcast_ref::<ExitError>())
        .map(|e| e.exit)
        .unwrap_or(Exit::Harness)
}
