use super::super::parse;
use super::*;

fn p(text: &str) -> Result<Plan, ScenarioError> {
    parse(Path::new("s.toml"), text)
}

#[test]
fn defaults_follow_socket_io_client() {
    let plan = p("[users]\ncount = 50\n").unwrap();
    assert_eq!(plan.reconnection, ReconnectPolicy::default());
    assert_eq!((plan.users.conversations, plan.users.members), (5, 10));
    assert_eq!(plan.name, "s");
    assert!(plan.target.url.is_none());
    assert_eq!(plan.target.events.send, "send-message");
    assert!(plan.target.command.is_none());
}

#[test]
fn a_command_target_is_managed_and_takes_the_managed_settings() {
    let plan = p("[target]\ncommand = \"node server.js --recovery\"\ntoken_ttl = \"2s\"\nping_interval = \"1s\"\n[users]\ncount = 4\n[[faults]]\nkind = \"server-restart\"\nmode = \"crash\"\nat = \"1s\"\ndown = \"1s\"\n")
        .unwrap();
    assert_eq!(
        plan.target.command.as_deref(),
        Some("node server.js --recovery")
    );
    assert!(plan.target.url.is_none());
    assert_eq!(plan.target.token_ttl, Some(Duration::from_secs(2)));
}

#[test]
fn errors_point_at_the_value_and_say_the_fix() {
    let e = p("[users]\ncount = 5\nmembers = 9\n").unwrap_err();
    assert_eq!((e.line, e.column), (3, 11));
    assert!(e.message.contains("more than users.count (5)"), "{e}");
    assert!(e.fix.as_deref().unwrap().contains("at most 5"));

    let e = p("[users]\ncount = 5\nsend_rate = \"fast\"\n").unwrap_err();
    assert_eq!((e.line, e.column), (3, 13), "{e}");
    assert!(e.message.contains("\"2/s\""), "{e}");

    let e = p("[users]\ncount = 5\ncolour = 1\n").unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    assert!(e.message.contains("unknown field `colour`"), "{e}");

    let e = p("[run]\nduration = \"30s\"\n").unwrap_err();
    assert!(e.to_string().contains("[users]"), "{e}");

    let e = p("[target]\nurl = \"http://x:1\"\nbugs = [\"volatile-queue\"]\n[users]\ncount = 1\n")
        .unwrap_err();
    assert_eq!(e.line, 3, "{e}");

    let e = p("[users]\ncount = 1\n[users.reconnection]\ndelay = \"10s\"\ndelay_max = \"1s\"\n")
        .unwrap_err();
    assert_eq!(e.line, 5, "{e}");

    let e = p("[target]\nurl = \"http://x:1\"\ncommand = \"node s.js\"\n[users]\ncount = 1\n")
        .unwrap_err();
    assert_eq!((e.line, e.column), (3, 11), "{e}");
    assert!(e.message.contains("mutually exclusive"), "{e}");

    let e = p("[target]\ncommand = \"  \"\n[users]\ncount = 1\n").unwrap_err();
    assert_eq!((e.line, e.column), (2, 11), "{e}");

    let e = p("[target]\ncommand = \"node s.js\"\nrestart_command = \"x\"\n[users]\ncount = 1\n")
        .unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    assert!(e.fix.as_deref().unwrap().contains("remove restart_command"));

    let e =
        p("[target]\ncommand = \"node s.js\"\nbugs = [\"volatile-queue\"]\n[users]\ncount = 1\n")
            .unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    let e = p("[target]\nping_interval = \"1s\"\nping_timeout = \"1s\"\n[users]\ncount = 4\n[[faults]]\nkind = \"offline\"\ncohort = \"rest\"\nmode = \"blackhole\"\nat = \"1s\"\nfor = \"2s\"\n").unwrap_err();
    assert_eq!(e.line, 11, "{e}");
    assert!(e.fix.as_deref().unwrap().contains("2.5s"), "{e}");
    let e = p("[target]\nping_interval = \"1s\"\nping_timeout = \"1s\"\n[users]\ncount = 4\n[[faults]]\nkind = \"flapping\"\ncohort = \"rest\"\nmodes = [\"reset\", \"blackhole\"]\ndown = \"1s..4s\"\nup = \"1s\"\nfor = \"10s\"\n").unwrap_err();
    assert_eq!(e.line, 10, "{e}");
    p("[target]\nping_interval = \"1s\"\nping_timeout = \"1s\"\n[users]\ncount = 4\n[[faults]]\nkind = \"flapping\"\ncohort = \"rest\"\nmodes = [\"reset\", \"refuse\"]\ndown = \"1s..4s\"\nup = \"1s\"\nfor = \"10s\"\n").unwrap();

    // Values that parse but mean nothing: each says what to write.
    let e = p("[run]\nduration = \"-5s\"\n[users]\ncount = 1\n").unwrap_err();
    assert_eq!((e.line, e.column), (2, 12), "{e}");
    assert!(e.message.contains("is negative"), "{e}");
    let e = p("[users]\ncount = 1\nsend_rate = \"0/s\"\n").unwrap_err();
    assert!(e.message.contains("leave send_rate out"), "{e}");
    let e = p("[users]\ncount = 10\n[[cohorts]]\nname = \"a\"\nusers = \"150%\"\n").unwrap_err();
    assert_eq!(e.line, 5, "{e}");
    assert!(e.message.contains("from 0% to 100%"), "{e}");

    let e = p("[users]\ncount = 1\ndriver = \"socketio\"\n").unwrap_err();
    assert_eq!((e.line, e.column), (3, 10), "{e}");
    assert!(e.message.contains("`native` or `rust_socketio`"), "{e}");
    assert!(e.fix.is_some(), "{e}");

    let e =
        p("[users]\ncount = 1\ndriver = \"rust_socketio\"\n[users.reconnection]\nattempts = 300\n")
            .unwrap_err();
    assert_eq!((e.line, e.column), (3, 10), "{e}");
    assert!(e.fix.as_deref().unwrap().contains("255"), "{e}");

    let e = p("[target]\nbugs = [\"nope\"]\n[users]\ncount = 1\n").unwrap_err();
    assert!(
        e.message.contains("volatile-queue"),
        "lists the known bugs: {e}"
    );
}

#[test]
fn capacity_stages_and_its_mistakes() {
    let cap = "[users]\ncount = 100\nsend_rate = \"1/4s\"\n[capacity]\nstep = 150\nmax = 500\nhold = \"10s\"\nknee = \"delivery.p99 < 250ms\"\n";
    let plan = p(cap).unwrap();
    let c = plan.capacity.as_ref().unwrap();
    assert_eq!(
        c.stages(),
        [100, 250, 400, 500],
        "the last stage is capped at max"
    );
    assert_eq!(c.knee, ("delivery.p99".into(), "< 250ms".into()));
    assert_eq!(c.hold, Duration::from_secs(10));

    let e = p(&cap.replace("delivery.p99 < 250ms", "delivery.p98 < 250ms")).unwrap_err();
    assert_eq!(e.line, 8, "{e}");
    assert!(e.message.contains("not a latency threshold"), "{e}");
    let e = p(&cap.replace("delivery.p99 < 250ms", "delivery.p99 > 250ms")).unwrap_err();
    assert_eq!(e.line, 8, "{e}");
    assert_eq!(
        e.fix.as_deref(),
        Some("write knee = \"delivery.p99 < 250ms\""),
        "{e}"
    );
    let e = p(&cap.replace("max = 500", "max = 50")).unwrap_err();
    assert_eq!(e.line, 6, "{e}");
    let e = p(&cap.replace("step = 150", "step = 0")).unwrap_err();
    assert_eq!(e.line, 5, "{e}");
    let e = p(&format!(
        "{cap}[[faults]]\nkind = \"token-expiry\"\nusers = 1\n"
    ))
    .unwrap_err();
    assert!(e.message.contains("cannot have [[faults]]"), "{e}");
}

#[test]
fn a_cohort_may_sync_its_own_way() {
    let plan = p("[users]\ncount = 10\nsync = \"rest\"\n[[cohorts]]\nname = \"app\"\nusers = 4\nsync = \"none\"\n").unwrap();
    assert_eq!(plan.sync_of(0), SyncMode::None);
    assert_eq!(plan.sync_of(3), SyncMode::None);
    assert_eq!(plan.sync_of(4), SyncMode::Rest);
}

#[test]
fn settings_only_a_managed_server_obeys_are_named_for_a_target_run() {
    let plan = p("[target]\ntoken_ttl = \"5s\"\nping_interval = \"1s\"\nbugs = [\"drop-under-load\"]\n[users]\ncount = 4\n")
        .unwrap();
    let named = target::managed_only(&plan.target);
    assert_eq!(named.len(), 3, "{named:?}");
    assert!(named[0].starts_with("token_ttl = \"5s\""), "{named:?}");
    assert!(named[1].contains("pingInterval"), "{named:?}");
    assert!(named[2].starts_with("bugs"), "{named:?}");
    let plain = p("[users]\ncount = 4\n").unwrap();
    assert!(target::managed_only(&plain.target).is_empty());
}

/// A zero ack timeout times out every send and join at once; it passed
/// validation and the run before.
#[test]
fn a_zero_ack_timeout_is_refused_where_it_is_written() {
    let e = p("[users]\ncount = 5\nack_timeout = \"0s\"\n").unwrap_err();
    assert_eq!((e.line, e.column), (3, 15), "{e}");
    assert!(
        e.message.contains("ack_timeout must be more than zero"),
        "{e}"
    );
    assert!(e.fix.unwrap().contains("ack_timeout = \"10s\""));
    let plan = p("[users]\ncount = 5\nack_timeout = \"2s\"\n").unwrap();
    assert_eq!(plan.users.ack_timeout, Duration::from_secs(2));
}
