//! Scenario files: parse, validate and resolve into a [`Plan`].
//!
//! Everything a run needs is decided here, before any user is spawned, so a
//! mistake costs a one-line error with file:line:column instead of a run.

pub mod error;
pub mod faults;
pub mod faults_file;
pub mod file;
pub mod plan;
pub mod units;

use std::path::Path;

pub use error::ScenarioError;
pub use faults::{Action, Cohort, NetEffect, OfflineMode, RestartMode, Step};
pub use faults_file::{FaultKind, Share};
pub use file::{ApiPaths, Driver, EventNames, Resend, SyncMode};
pub use plan::{CapacityPlan, Plan, ReconnectPolicy, TargetPlan, UsersPlan};

/// Reads and resolves a scenario file.
pub fn load(path: &Path) -> Result<Plan, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: path.to_owned(),
        line: 1,
        column: 1,
        message: format!("cannot read the scenario file: {e}"),
        fix: None,
    })?;
    parse(path, &text)
}

/// Resolves scenario text; `path` names it in errors and in the plan.
pub fn parse(path: &Path, text: &str) -> Result<Plan, ScenarioError> {
    let file: file::ScenarioFile = toml::from_str(text).map_err(|e| {
        let message = e.message().trim().to_string();
        let fix = fix_for(&message);
        let err = ScenarioError::at(path, text, e.span(), message);
        match fix {
            Some(f) => err.with_fix(f),
            None => err,
        }
    })?;
    plan::resolve(path, text, file)
}

/// Extra advice for serde's own messages, where it has something to add.
fn fix_for(message: &str) -> Option<String> {
    if message.starts_with("unknown field") {
        Some("remove the key or correct its spelling; the keys this section accepts are listed above".into())
    } else if message.starts_with("missing field `users`") {
        Some("add a [users] section with at least `count = N`".into())
    } else if message.starts_with("unknown variant") {
        Some("use one of the values listed above".into())
    } else {
        None
    }
}
