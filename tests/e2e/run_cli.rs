//! `reconnoiter run` as a process, the way CI starts and stops it: signals
//! and a mistyped `--target`, judged by exit code, files and processes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::BIN;

/// run_e2e's small run, long enough to be stopped or refused mid-way.
fn write_scenario(root: &Path) -> PathBuf {
    let path = root.join("sc.toml");
    let text = crate::run_e2e::SMALL
        .replace("duration = \"3s\"", "duration = \"60s\"")
        .replace("drain = \"10s\"", "drain = \"5s\"");
    std::fs::write(&path, text).unwrap();
    path
}

/// `reconnoiter run -q --target TARGET` of that scenario, reports under
/// `root/reports`.
fn run_against(root: &Path, target: &str) -> (std::process::Output, String) {
    let o = Command::new(BIN)
        .args(["run", "-q", "--target", target, "--reports"])
        .arg(root.join("reports"))
        .arg(write_scenario(root))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    (o, stderr)
}

/// A long-lived `reconnoiter serve`, seeded as run_e2e's SMALL is.
fn small_server() -> crate::common::ServerProcess {
    small_server_with(&[])
}

/// The same server, with more flags (`--no-seq`).
fn small_server_with(extra: &[&str]) -> crate::common::ServerProcess {
    let mut args = vec![
        "--users",
        "20",
        "--conversations",
        "4",
        "--members",
        "5",
        "--seed",
        "7",
    ];
    args.extend(extra);
    crate::common::ServerProcess::start(&args)
}

/// The run folders under `reports` (none when it does not exist).
fn run_folders(reports: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(reports)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}
/// The pids whose parent is `parent` (from /proc).
fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` is still a live process (a zombie is not).
/// `parent`'s children and theirs: a command's shell and what it started.
fn children_and_grandchildren(parent: u32) -> Vec<u32> {
    let mut out = children_of(parent);
    for pid in out.clone() {
        out.extend(children_of(pid));
    }
    out
}

/// Waits up to 5 s for every pid to be gone, then asserts it is.
fn assert_gone(pids: Vec<u32>, after: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in pids {
        assert!(!alive(pid), "pid {pid} outlived {after}");
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().to_owned()))
        .is_some_and(|rest| !rest.starts_with('Z'))
}

/// The one run directory under `reports`, once it has a history with a
/// connected user in it.
fn wait_for_connected_users(reports: &Path, within: Duration) -> PathBuf {
    let deadline = Instant::now() + within;
    loop {
        if let Some(dir) = run_folders(reports).iter().find(|d| {
            std::fs::read_to_string(d.join("history.jsonl"))
                .is_ok_and(|h| h.contains("\"connected\""))
        }) {
            return dir.clone();
        }
        assert!(Instant::now() < deadline, "no user connected in {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigterm_writes_a_partial_report_marked_interrupted_and_stops_the_server() {
    let root = tempfile::tempdir().unwrap();
    let reports = root.path().join("reports");
    let child = Command::new(BIN)
        .args(["run", "-q", "--reports"])
        .arg(&reports)
        .arg(write_scenario(root.path()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let dir = wait_for_connected_users(&reports, Duration::from_secs(30));
    let server = children_of(child.id());
    assert!(!server.is_empty(), "the embedded server runs as a child");

    let sent = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        sent.elapsed() < Duration::from_secs(30),
        "SIGTERM cut the 60 s run short"
    );
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("interrupted by SIGTERM"), "{stderr}");

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["interrupted"], true);
    assert_eq!(summary["exit_code"], 4);
    for file in ["junit.xml", "summary.md", "history.jsonl"] {
        assert!(dir.join(file).exists(), "{file} written");
    }
    // The managed server's log marks its start and its orderly stop.
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap();
    assert!(log.contains("serving on 127.0.0.1:"), "{log}");
    assert!(log.contains("(seeded now)"), "{log}");
    assert!(log.contains("stopping: telling clients"), "{log}");
    for pid in server {
        assert!(!alive(pid), "the server (pid {pid}) outlived the run");
    }
}

/// A `[target] command` that is a process tree, as users' often are: a
/// shell that ignores SIGTERM and loops, and the embedded server it started
/// in the background.
fn stubborn_command() -> String {
    format!(
        "{BIN} serve --listen $HOST:$PORT --db $RECONNOITER_DB --users $RECONNOITER_USERS \
         --conversations $RECONNOITER_CONVERSATIONS --members $RECONNOITER_MEMBERS \
         --seed $RECONNOITER_SEED & trap '' TERM; while :; do sleep 1; done"
    )
}

/// `kill PID` twice: the second signal exits at once, without the orderly
/// cleanup, and must still take the server and the cohort's proxy along
/// (they get no signal of their own: only the harness's pid was named).
/// The server is a `[target] command` whose shell ignores SIGTERM, so the
/// orderly stop that the first signal starts is still waiting for it (5 s)
/// when the second comes: what a person pressing Ctrl-C twice meets.
#[test]
fn a_second_sigterm_exits_at_once_and_takes_the_server_and_proxies_along() {
    let root = tempfile::tempdir().unwrap();
    let reports = root.path().join("reports");
    let scenario = write_scenario(root.path());
    let text = std::fs::read_to_string(&scenario).unwrap();
    let server = stubborn_command();
    // A cohort behind a proxy; its fault comes long after the signals.
    let text = format!(
        "{text}\n[target]\ncommand = '''{server}'''\n\n[[cohorts]]\nname = \"flaky\"\nusers = \"50%\"\n\n\
         [[faults]]\nkind = \"offline\"\ncohort = \"flaky\"\nmode = \"reset\"\nat = \"50s\"\nfor = \"1s\"\n"
    );
    std::fs::write(&scenario, text).unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "-q", "--reports"])
        .arg(&reports)
        .arg(&scenario)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_connected_users(&reports, Duration::from_secs(30));
    // The command's shell and the server under it, and the proxy.
    let helpers = children_and_grandchildren(child.id());
    assert!(helpers.len() >= 3, "shell, server and proxy: {helpers:?}");
    let term = || {
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
    };
    assert!(term().success());
    std::thread::sleep(Duration::from_millis(500));
    assert!(term().success(), "the harness is still stopping the server");
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert_gone(helpers, "the harness's exit");
}

/// A second signal skips the orderly cleanup, which used to leave the
/// run's proxies (one with a live blackhole) on a Toxiproxy the run did
/// not start; they are deleted on the way out.
#[test]
fn a_second_sigterm_deletes_the_runs_proxies_on_an_external_toxiproxy() {
    let root = tempfile::tempdir().unwrap();
    let reports = root.path().join("reports");
    // Killed however the test ends: a live proxy holds the test's output
    // pipes, and cargo would wait for it.
    let (_proxy, api) = crate::proxy_support::hand_started_proxy();
    let list = || {
        let mut s = std::net::TcpStream::connect(&api).unwrap();
        std::io::Write::write_all(
            &mut s,
            format!("GET /proxies HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut s, &mut out).unwrap();
        out.split_once("\r\n\r\n").unwrap().1.to_owned()
    };
    let scenario = write_scenario(root.path());
    let text = std::fs::read_to_string(&scenario).unwrap();
    let text = format!(
        "{text}\n[[cohorts]]\nname = \"flaky\"\nusers = \"50%\"\n\n\
         [[faults]]\nkind = \"offline\"\ncohort = \"flaky\"\nmode = \"blackhole\"\nat = \"1s\"\nfor = \"50s\"\n"
    );
    std::fs::write(&scenario, text).unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "-q", "--toxiproxy", &api, "--reports"])
        .arg(&reports)
        .arg(&scenario)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_connected_users(&reports, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        list().contains("timeout"),
        "the blackhole is on: {}",
        list()
    );
    // Two kinds of signal, so the kernel cannot merge them into one, sent
    // together, so the second lands before the orderly cleanup is done.
    let pid = child.id();
    Command::new("sh")
        .args(["-c", &format!("kill -INT {pid}; kill -TERM {pid}")])
        .status()
        .unwrap();
    let code = child.wait().unwrap().code();
    assert!(matches!(code, Some(130 | 143)), "exited at once: {code:?}");
    assert_eq!(list().trim(), "{}");
}

/// SIGKILL runs no cleanup (a CI job's hard kill, the OOM killer): the
/// embedded server and proxy the run started notice it is gone and exit,
/// where they used to live on with their ports (and a proxy's toxics).
#[test]
fn a_sigkilled_run_does_not_leave_its_server_and_proxy_behind() {
    let root = tempfile::tempdir().unwrap();
    let reports = root.path().join("reports");
    let scenario = write_scenario(root.path());
    let text = std::fs::read_to_string(&scenario).unwrap();
    let text = format!(
        "{text}\n[[cohorts]]\nname = \"flaky\"\nusers = \"50%\"\n\n\
         [[faults]]\nkind = \"offline\"\ncohort = \"flaky\"\nmode = \"reset\"\nat = \"50s\"\nfor = \"1s\"\n"
    );
    std::fs::write(&scenario, text).unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "-q", "--reports"])
        .arg(&reports)
        .arg(&scenario)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_connected_users(&reports, Duration::from_secs(30));
    let helpers = children_of(child.id());
    assert!(helpers.len() >= 2, "server and proxy: {helpers:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_gone(helpers, "the SIGKILLed run");
}

/// SIGKILL again, with a `[target] command`: the user's server cannot be
/// asked to watch for the run's death, so the run starts a guard beside it
/// (`reconnoiter guard-group`) that kills the command's process group once
/// the run is gone. Without it, the shell and its server lived on.
#[test]
fn a_sigkilled_run_does_not_leave_its_target_command_behind() {
    let root = tempfile::tempdir().unwrap();
    let reports = root.path().join("reports");
    let scenario = write_scenario(root.path());
    let text = std::fs::read_to_string(&scenario).unwrap();
    let text = format!("{text}\n[target]\ncommand = '''{}'''\n", stubborn_command());
    std::fs::write(&scenario, text).unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "-q", "--reports"])
        .arg(&reports)
        .arg(&scenario)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_connected_users(&reports, Duration::from_secs(30));
    // The shell, the server it started, and the guard.
    let helpers = children_and_grandchildren(child.id());
    assert!(helpers.len() >= 3, "shell, server and guard: {helpers:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_gone(helpers, "the SIGKILLed run");
}

/// `--toxiproxy` values that cannot work are named before any user starts:
/// https (a panic inside toxiproxy_rust's client before), and an address
/// that answers but is no Toxiproxy API (a JSON parse error before); one
/// the scenario never uses is named in a warning.
#[test]
fn toxiproxy_addresses_that_cannot_work_are_named_up_front() {
    let root = tempfile::tempdir().unwrap();
    let server = small_server();
    let faulty = root.path().join("faulty.toml");
    std::fs::write(
        &faulty,
        format!(
            "{}\n[[cohorts]]\nname = \"flaky\"\nusers = \"50%\"\n\n\
             [[faults]]\nkind = \"offline\"\ncohort = \"flaky\"\nmode = \"reset\"\nat = \"1s\"\nfor = \"1s\"\n",
            crate::run_e2e::SMALL
        ),
    )
    .unwrap();
    let run = |scenario: &Path, toxiproxy: &str| {
        let o = Command::new(BIN)
            .args([
                "run",
                "-q",
                "--target",
                &server.url(),
                "--toxiproxy",
                toxiproxy,
            ])
            .arg("--reports")
            .arg(root.path().join("reports"))
            .arg(scenario)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&faulty, "https://127.0.0.1:8474");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("plain HTTP; give http://127.0.0.1:8474"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let (code, stderr) = run(&faulty, &server.url());
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("is not a Toxiproxy API"), "{stderr}");
    assert!(run_folders(&root.path().join("reports")).is_empty());

    let plain = root.path().join("plain.toml");
    std::fs::write(&plain, crate::run_e2e::SMALL).unwrap();
    let (code, stderr) = run(&plain, "http://127.0.0.1:1");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("--toxiproxy is not used"), "{stderr}");
}

#[test]
fn a_target_without_a_scheme_is_a_command_line_mistake_named_at_once() {
    let root = tempfile::tempdir().unwrap();
    for (target, says) in [
        ("127.0.0.1:1", "http://127.0.0.1:1"),
        ("ftp://127.0.0.1:1", "http://"),
    ] {
        let started = Instant::now();
        let (o, stderr) = run_against(root.path(), target);
        assert_eq!(o.status.code(), Some(2), "{target}: {stderr}");
        assert!(stderr.contains("--target"), "{target}: {stderr}");
        assert!(stderr.contains(says), "{target}: {stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{target}: refused before any attempt to reach it"
        );
    }
    assert!(
        run_folders(&root.path().join("reports")).is_empty(),
        "no run folder for a run that never started"
    );
}

#[test]
fn an_unreachable_target_is_exit_4_and_leaves_no_empty_run_folder() {
    let root = tempfile::tempdir().unwrap();
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (o, stderr) = run_against(root.path(), &format!("http://127.0.0.1:{port}"));
    assert_eq!(o.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("unreachable"), "{stderr}");
    let left = run_folders(&root.path().join("reports"));
    assert!(left.is_empty(), "run folders left behind: {left:?}");
}

#[test]
fn a_target_that_answers_but_is_no_chat_server_is_told_apart_from_unreachable() {
    // A web server that is not a chat server: every request gets a 404 page.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = "<!DOCTYPE HTML>\n<html>\n<title>Error 404</title>\n</html>\n";
            let _ = write!(
                stream,
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let root = tempfile::tempdir().unwrap();
    let (o, stderr) = run_against(root.path(), &format!("http://127.0.0.1:{port}"));
    assert_eq!(o.status.code(), Some(4), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("answers, but not as a chat server"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("GET http://127.0.0.1:"), "{line}");
    assert!(
        line.contains("/health gave HTTP 404 (<!DOCTYPE HTML> <html>"),
        "{line}"
    );
    assert!(line.contains("[target.api] health"), "{line}");
}

/// The same scenario run twice against one long-lived server, as a staging
/// server sees it. The second run's sends are new messages, not resends of
/// the first run's (a server dedupes by temp_id across runs); and what the
/// server stored in the first run, which the second run's users fetch when
/// they sync after losing their connection at the start of the chat, is
/// history, not phantoms. Both runs pass with every delivery.
#[test]
fn a_second_run_against_the_same_server_is_judged_on_its_own_messages() {
    second_run_against_the_same_server(small_server());
}

/// The same against a server that numbers nothing (`serve --no-seq`): with
/// no seq to compare, the first run's messages are told from phantoms by
/// their temp_ids, which carry that run's tag. They used to be phantoms.
#[test]
fn a_second_run_against_a_server_without_seq_is_judged_on_its_own_messages() {
    second_run_against_the_same_server(small_server_with(&["--no-seq"]));
}

fn second_run_against_the_same_server(server: crate::common::ServerProcess) {
    let root = tempfile::tempdir().unwrap();
    let scenario = root.path().join("sc.toml");
    let flaky = r#"
[[cohorts]]
name = "flaky"
users = "50%"
[[faults]]
kind = "offline"
cohort = "flaky"
mode = "reset"
for = "1s"
"#;
    // Slow senders, so that a flaky user has seen nothing of this run when
    // its connection is reset: its sync then asks for everything.
    let small = crate::run_e2e::SMALL.replace("send_rate = \"2/s\"", "send_rate = \"1/4s\"");
    assert_ne!(small, crate::run_e2e::SMALL);
    std::fs::write(&scenario, format!("{small}{flaky}")).unwrap();
    for round in ["first", "second"] {
        let reports = root.path().join(round);
        let o = Command::new(BIN)
            .args(["run", "-q", "--target", &server.url(), "--reports"])
            .arg(&reports)
            .arg(&scenario)
            .output()
            .unwrap();
        let folder = run_folders(&reports).pop().expect("a run folder");
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(folder.join("summary.json")).unwrap())
                .unwrap();
        let (counts, excluded) = (
            &summary["verdict"]["counts"],
            &summary["verdict"]["excluded"],
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "{round} run: {counts}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            counts["accepted"].as_u64().unwrap() > 0,
            "{round}: {counts}"
        );
        assert_eq!(
            counts["delivered_owed"], counts["owed"],
            "{round}: {counts}"
        );
        assert!(
            counts["reconnects"].as_u64().unwrap() > 0,
            "{round}: {counts}"
        );
        let before = excluded["before_run"].as_u64().unwrap();
        if round == "first" {
            assert_eq!(before, 0, "a fresh server has no history");
        } else {
            assert!(
                before > 0,
                "the syncs fetched the first run's messages: {excluded}"
            );
        }
    }
}

/// A server seeded otherwise than the scenario, or one someone removed
/// members from, is refused before any user starts (exit 4, the mismatch
/// named), instead of ending in loss violations that are the roster's, not
/// the server's. A run's own membership faults are given back at its end,
/// so running a scenario with them twice works.
#[test]
fn a_server_whose_memberships_differ_from_the_scenario_is_refused_up_front() {
    let server = small_server();
    let root = tempfile::tempdir().unwrap();
    let run = |name: &str, text: String| {
        let scenario = root.path().join(format!("{name}.toml"));
        std::fs::write(&scenario, text).unwrap();
        let reports = root.path().join(name);
        let started = Instant::now();
        let o = Command::new(BIN)
            .args(["run", "-q", "--target", &server.url(), "--reports"])
            .arg(&reports)
            .arg(&scenario)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        (
            o.status.code(),
            stderr,
            started.elapsed(),
            run_folders(&reports),
        )
    };
    let small = crate::run_e2e::SMALL;

    let (code, stderr, took, folders) = run("seed8", small.replace("seed = 7", "seed = 8"));
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("memberships do not match"), "{stderr}");
    assert!(stderr.contains("--seed 8`"), "{stderr}");
    assert!(
        took < Duration::from_secs(5),
        "refused before the ramp: {took:?}"
    );
    assert!(folders.is_empty(), "{folders:?}");

    // A run that removes three memberships for good gives them back once
    // its users have stopped: the next run finds the seed's roster.
    let removing = format!("{small}\n[[faults]]\nkind = \"membership\"\nusers = 3\nat = \"1s\"\n");
    for round in ["first", "second"] {
        let (code, stderr, _, _) = run(round, removing.clone());
        assert_eq!(code, Some(0), "{round}: {stderr}");
    }

    // Someone else removes one: the next run is refused.
    let plan = reconnoiter::scenario::parse(Path::new("s.toml"), small).unwrap();
    let (conversation, members) = reconnoiter::target::ManagedServer::roster(&plan)
        .into_iter()
        .next()
        .unwrap();
    let url = format!(
        "{}/api/conversations/{conversation}/participants/{}",
        server.url(),
        members[0]
    );
    let status = tokio::runtime::Runtime::new().unwrap().block_on(async {
        reqwest::Client::new()
            .delete(url)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
    let (code, stderr, _, folders) = run("third", small.to_owned());
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("memberships do not match"), "{stderr}");
    assert!(stderr.contains("fresh database"), "{stderr}");
    assert!(stderr.contains("on the server"), "{stderr}");
    assert!(folders.is_empty(), "{folders:?}");
}

/// `--check` on the knee's own metric gates every stage but does not move
/// the knee: said before the first stage, where a user expected otherwise.
#[test]
fn a_check_on_the_knee_metric_of_a_capacity_run_is_named() {
    let root = tempfile::tempdir().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/capacity.toml");
    let o = Command::new(BIN)
        .args([
            "run",
            "-q",
            "--check",
            "delivery.p99<1s",
            "--target",
            "http://127.0.0.1:1",
        ])
        .arg("--reports")
        .arg(root.path().join("reports"))
        .arg(&scenario)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("--check delivery.p99<1s gates every stage; the knee is still [capacity] knee = \"delivery.p99 "),
        "{stderr}"
    );
}
