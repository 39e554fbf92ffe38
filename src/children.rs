//! The child processes a run starts (managed servers, embedded proxies),
//! noted so that a second stop signal, which exits at once and skips the
//! orderly cleanup, still takes them along. A `kill PID` sent twice reaches
//! only the harness; without this its server and proxies ran on.

use std::sync::Mutex;

#[derive(Debug, Clone, Copy)]
struct Started {
    pid: i32,
    /// It leads a process group of its own (a `[target] command`'s shell):
    /// the whole group goes, as it does on the orderly path.
    group: bool,
}

/// The noted children; one per process (`CHILDREN`), its own in a test.
struct Registry(Mutex<Vec<Started>>);

static CHILDREN: Registry = Registry(Mutex::new(Vec::new()));

/// Notes a child just spawned. Never forgotten (a few bytes a restart):
/// `kill_all` checks that a pid is still our child before it kills.
pub fn started(pid: u32, group: bool) {
    CHILDREN.note(pid, group);
}

/// SIGKILLs every noted child that is still ours, and the groups of those
/// that lead one.
pub fn kill_all() {
    CHILDREN.kill_all();
}

impl Registry {
    fn note(&self, pid: u32, group: bool) {
        let mut started = self.0.lock().unwrap_or_else(|p| p.into_inner());
        started.push(Started {
            pid: pid as i32,
            group,
        });
    }

    fn kill_all(&self) {
        let started = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let me = std::process::id() as i32;
        // Only a child that is still ours (running, or a zombie not yet
        // reaped): a reaped one's group was killed on the orderly path, and
        // its pid may be another process's now.
        for s in started.iter().filter(|s| parent_of(s.pid) == Some(me)) {
            if s.group {
                // SAFETY: kill(2) with a negative pid signals the process
                // group; no memory is involved.
                unsafe { libc::kill(-s.pid, libc::SIGKILL) };
            }
            // SAFETY: as above, for the one process.
            unsafe { libc::kill(s.pid, libc::SIGKILL) };
        }
    }
}

/// The parent pid of `pid`, from /proc (None when it is gone).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kills_our_children_and_leaves_others_alone() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        started(child.id(), false);
        // Pid 1 is not our child: noted, it must survive kill_all.
        started(1, false);
        assert_eq!(
            parent_of(child.id() as i32),
            Some(std::process::id() as i32)
        );
        kill_all();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(parent_of(1).is_some(), "init is alive");
    }
}
