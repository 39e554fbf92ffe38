//! Cohorts: which users share a proxy (and so a network fault).

use serde::Serialize;

use super::Context;
use crate::scenario::error::ScenarioError;
use crate::scenario::faults_file::CohortSection;

/// Users `first .. first + count` share one proxy.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Cohort {
    pub name: String,
    pub first: u32,
    pub count: u32,
}

impl Cohort {
    pub fn contains(&self, user: u32) -> bool {
        (self.first..self.first + self.count).contains(&user)
    }
}

/// Cohorts in file order take consecutive users; the users left over form
/// a cohort named "rest".
pub fn cohorts(cx: &Context<'_>, sections: &[CohortSection]) -> Result<Vec<Cohort>, ScenarioError> {
    let mut out = Vec::new();
    let mut next = 0u32;
    for c in sections {
        let name = c.name.get_ref().clone();
        if name == "rest" || out.iter().any(|o: &Cohort| o.name == name) {
            return Err(cx.err(
                c.name.span(),
                format!("cohort name {name:?} is used twice (\"rest\" is reserved)"),
                "give every cohort its own name",
            ));
        }
        let count = c.users.get_ref().of(cx.users);
        // An empty cohort's faults would touch nobody, and the run would
        // pass without testing them (a share scaled down with users.count).
        if count == 0 {
            return Err(cx.err(
                c.users.span(),
                format!(
                    "cohort {name:?} gets no users: `users = {}` of {} is 0",
                    c.users.get_ref(),
                    cx.users
                ),
                "give it at least one user (a larger share, a count, or more users.count), or remove the cohort and its faults",
            ));
        }
        if next + count > cx.users {
            return Err(cx.err(
                c.users.span(),
                format!("cohorts add up to more than the {} users (this one needs {count}, {} are left)", cx.users, cx.users - next),
                "make the cohorts add up to at most 100% of users.count",
            ));
        }
        out.push(Cohort {
            name,
            first: next,
            count,
        });
        next += count;
    }
    if next < cx.users {
        out.push(Cohort {
            name: "rest".into(),
            first: next,
            count: cx.users - next,
        });
    }
    Ok(out)
}
