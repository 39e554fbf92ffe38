//! Scenario files: parse, validate and resolve into a [`Plan`].
//!
//! Everything a run needs is decided here, before any user is spawned, so a
//! mistake costs a one-line error with file:line:column instead of a run.

pub mod error;
mod explain;
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
pub use plan::base_url_problem;
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
        let (message, fix) = explain::explain(e.message().trim(), text, e.span());
        let err = ScenarioError::at(path, text, e.span(), message);
        match fix {
            Some(f) => err.with_fix(f),
            None => err,
        }
    })?;
    plan::resolve(path, text, file)
}
