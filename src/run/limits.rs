//! Open files: each connected user holds one socket, so the process's
//! open-files limit caps how many users it can simulate. The soft limit is
//! raised to the hard one at start; a run that cannot fit is refused before
//! any user is spawned, with the number that would fit.

use crate::exit::ExitError;

/// Files the harness needs besides one per user: the history, the REST
/// connection pool, the runtime, stdio, the managed server's pipes.
pub const OVERHEAD: u64 = 256;

/// Raises the soft limit to the hard limit; returns the limit now in force.
pub fn raise_open_files() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024)
}

/// Refuses a user count that cannot fit under `limit` open files.
pub fn check_users_fit(users: u32, limit: u64) -> Result<(), ExitError> {
    let need = users as u64 + OVERHEAD;
    if need <= limit {
        return Ok(());
    }
    let fit = limit.saturating_sub(OVERHEAD);
    Err(ExitError::bad_input(format!(
        "{users} users need about {need} open files (one socket each plus {OVERHEAD}), \
         but this process may open {limit} (hard limit); at most {fit} users fit in one process. \
         Lower users.count, raise the hard limit (ulimit -Hn), or split the run into shards"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_does_not_fit_and_says_how_many_do() {
        assert!(check_users_fit(1000, 20_000).is_ok());
        let e = check_users_fit(20_000, 20_000).unwrap_err();
        assert!(e.message.contains("at most 19744 users fit"), "{e}");
    }
}
