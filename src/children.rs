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
/// that lead one; then deletes the run's proxies on an external Toxiproxy
/// (see [`created_on`]).
pub fn kill_all() {
    CHILDREN.kill_all();
    delete_external_proxies();
}

/// Proxies a run created on a Toxiproxy it did not start: (API host:port,
/// proxy name). Nothing else removes them when a second signal skips the
/// orderly cleanup, and one may hold a live blackhole for whoever uses
/// that Toxiproxy next.
static EXTERNAL: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// Notes proxies created on an external Toxiproxy.
pub fn created_on(api: &str, names: impl IntoIterator<Item = String>) {
    let mut external = EXTERNAL.lock().unwrap_or_else(|p| p.into_inner());
    external.extend(names.into_iter().map(|n| (api.to_owned(), n)));
}

/// Forgets proxies the orderly cleanup deleted, so a later second signal
/// (in a process that runs again, such as a capacity run's next stage)
/// does not delete a proxy of the same name that is no longer ours.
pub fn deleted_on(api: &str, names: &[String]) {
    forget(
        &mut EXTERNAL.lock().unwrap_or_else(|p| p.into_inner()),
        api,
        names,
    );
}

fn forget(external: &mut Vec<(String, String)>, api: &str, names: &[String]) {
    external.retain(|(a, n)| a != api || !names.contains(n));
}

/// `DELETE /proxies/NAME` for each, over a plain socket with short
/// timeouts: this runs as the process exits, outside any runtime.
fn delete_external_proxies() {
    use std::io::{Read, Write};
    use std::net::{TcpStream, ToSocketAddrs};
    use std::time::Duration;
    let external = std::mem::take(&mut *EXTERNAL.lock().unwrap_or_else(|p| p.into_inner()));
    for (api, name) in external {
        let Some(addr) = api.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
            continue;
        };
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
            continue;
        };
        let _ = s.set_write_timeout(Some(Duration::from_millis(300)));
        let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
        let request =
            format!("DELETE /proxies/{name} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n");
        if s.write_all(request.as_bytes()).is_ok() {
            // Wait for the answer, so the deletion is done before we exit.
            let _ = s.read(&mut [0u8; 256]);
        }
    }
}

/// Set by a run on the embedded server and proxies it starts: the run's pid.
pub const PARENT_ENV: &str = "RECONNOITER_PARENT_PID";

/// Gives a run's own embedded server or proxy to the run's pid (see
/// [`exit_with_parent`]).
pub fn watched_by_us(command: &mut std::process::Command) -> &mut std::process::Command {
    command.env(PARENT_ENV, std::process::id().to_string())
}

/// In an embedded server or proxy a run started: exit once that run is
/// gone. A run killed by SIGKILL (a CI job's hard kill, the OOM killer)
/// runs no cleanup at all, and its server and proxies lived on, holding
/// their ports and, for a proxy, a blackhole. Polls the parent pid (a
/// parent-death signal would fire when the spawning *thread* ends, and
/// restarts are spawned from short-lived blocking threads).
pub fn exit_with_parent() {
    let Some(parent) = parent_from_env() else {
        return;
    };
    let watch = move || {
        loop {
            // SAFETY: getppid has no preconditions and cannot fail.
            if unsafe { libc::getppid() } != parent {
                eprintln!("the run that started this process (pid {parent}) is gone; exiting");
                std::process::exit(1);
            }
            std::thread::sleep(WATCH_EVERY);
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("parent-watch".into())
        .spawn(watch)
    {
        tracing::warn!("cannot watch the parent run: {e}");
    }
}

/// How often a watcher checks that the run is still there.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// The run's pid, as [`watched_by_us`] passed it down.
fn parent_from_env() -> Option<i32> {
    std::env::var(PARENT_ENV).ok()?.parse().ok()
}

/// `reconnoiter guard-group --group PGID`, a process a run starts beside
/// each `[target] command` it launches. A run killed by SIGKILL cleans
/// nothing up, and the command (the user's own server, any process tree)
/// cannot be asked to watch for that as the embedded server does. The guard
/// does it for it: once the run is gone it SIGKILLs the command's process
/// group; once the group is gone (the run stopped it) it exits.
pub fn guard_group(group: i32) -> anyhow::Result<()> {
    let bad = |m: String| anyhow::Error::from(crate::exit::ExitError::bad_input(m));
    let Some(parent) = parent_from_env() else {
        return Err(bad(format!(
            "guard-group is started by `reconnoiter run` ({PARENT_ENV} is not set)"
        )));
    };
    if group <= 1 {
        return Err(bad(format!(
            "--group {group} is not a command's process group"
        )));
    }
    // SAFETY: getppid has no preconditions and cannot fail.
    if guard(group, || unsafe { libc::getppid() } == parent) {
        eprintln!(
            "the run that started this guard (pid {parent}) is gone; killed process group {group}"
        );
    }
    Ok(())
}

/// Watches `group` while `run_alive` says so; SIGKILLs it (and says true)
/// once the run is gone, returns false once the group is.
fn guard(group: i32, run_alive: impl Fn() -> bool) -> bool {
    loop {
        if !crate::target::managed::group_alive(group as u32) {
            return false;
        }
        if !run_alive() {
            // SAFETY: kill(2) with a negative pid signals the process
            // group; no memory is involved.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            return true;
        }
        std::thread::sleep(WATCH_EVERY);
    }
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
        for s in started.iter() {
            if s.group {
                // The whole group, even when its shell is gone: a command's
                // server may outlive the shell the orderly stop reaped. A
                // group id is not reused while the group has a member.
                // SAFETY: kill(2) with a negative pid signals the process
                // group; no memory is involved.
                unsafe { libc::kill(-s.pid, libc::SIGKILL) };
            }
            // One process only while it is still ours (running, or a zombie
            // not yet reaped): a reaped one's pid may be another's now.
            if parent_of(s.pid) == Some(me) {
                // SAFETY: as above, for the one process.
                unsafe { libc::kill(s.pid, libc::SIGKILL) };
            }
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

    /// The guard leaves a group alone while the run lives, kills all of
    /// it once the run is gone, and ends by itself when the group does.
    #[test]
    fn the_guard_kills_the_group_only_once_the_run_is_gone() {
        use std::os::unix::process::{CommandExt, ExitStatusExt};
        let spawn = || {
            std::process::Command::new("sleep")
                .arg("30")
                .process_group(0)
                .spawn()
                .unwrap()
        };
        let mut child = spawn();
        let group = child.id() as i32;
        let checks = std::sync::atomic::AtomicU32::new(0);
        // The run is alive for three checks, then gone.
        let killed = guard(group, || {
            checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 3
        });
        assert!(killed);
        assert_eq!(checks.into_inner(), 4);
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));

        let mut child = spawn();
        let group = child.id() as i32;
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!guard(group, || true), "a gone group ends the guard");
    }

    /// Only the named proxies of that API are forgotten: the same name on
    /// another Toxiproxy is still ours to delete.
    #[test]
    fn deleted_proxies_are_forgotten_on_their_api_only() {
        let pair = |a: &str, n: &str| (a.to_owned(), n.to_owned());
        let mut external = vec![pair("h:1", "a"), pair("h:1", "b"), pair("h:2", "a")];
        forget(&mut external, "h:1", &["a".to_owned()]);
        assert_eq!(external, [pair("h:1", "b"), pair("h:2", "a")]);
    }

    /// A command's server that outlives its shell (reaped on the orderly
    /// path) still goes with its group.
    #[test]
    fn a_group_goes_even_when_its_shell_was_reaped() {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let mut sh = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & echo $!; wait"])
            .process_group(0)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(sh.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let server: i32 = line.trim().parse().unwrap();
        let registry = Registry(Mutex::new(Vec::new()));
        registry.note(sh.id(), true);
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(sh.id() as i32, libc::SIGKILL) };
        sh.wait().unwrap();
        let alive = |pid: i32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().to_owned()))
                .is_some_and(|r| !r.starts_with('Z'))
        };
        assert!(alive(server), "the shell's child outlived it");
        registry.kill_all();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while alive(server) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!alive(server), "the group was killed");
    }
}
