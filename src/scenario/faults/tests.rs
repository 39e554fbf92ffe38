use crate::scenario::{Action, ScenarioError, parse};
use std::path::Path;

fn p(extra: &str) -> Result<crate::scenario::Plan, ScenarioError> {
    parse(
        Path::new("f.toml"),
        &format!("[run]\nduration = \"20s\"\n[users]\ncount = 10\n{extra}"),
    )
}

#[test]
fn unknown_kind_over_full_cohorts_and_late_faults_are_refused_with_positions() {
    let e = p("[[faults]]\nkind = \"earthquake\"\nat = \"1s\"\n").unwrap_err();
    assert_eq!((e.line, e.column), (6, 8), "{e}");
    assert!(
        e.message.contains("server-restart"),
        "lists the known kinds: {e}"
    );

    let e = p(
        "[[cohorts]]\nname = \"a\"\nusers = \"60%\"\n[[cohorts]]\nname = \"b\"\nusers = \"50%\"\n",
    )
    .unwrap_err();
    assert_eq!(e.line, 10, "{e}");
    assert!(e.message.contains("more than the 10 users"), "{e}");
    let e = p("[[cohorts]]\nname = \"a\"\nusers = \"150%\"\n").unwrap_err();
    assert_eq!(e.line, 7, "{e}");

    let e = p("[[faults]]\nkind = \"offline\"\nmode = \"refuse\"\nat = \"15s\"\nfor = \"10s\"\n")
        .unwrap_err();
    assert_eq!((e.line, e.column), (9, 7), "{e}");
    assert!(e.message.contains("past the end of the run"), "{e}");

    let e = p("[[faults]]\nkind = \"offline\"\ncohort = \"nobody\"\nmode = \"refuse\"\nat = \"1s\"\nfor = \"1s\"\n").unwrap_err();
    assert!(e.message.contains("no cohort named"), "{e}");
    let e = p("[[faults]]\nkind = \"offline\"\nmode = \"sideways\"\nat = \"1s\"\nfor = \"1s\"\n")
        .unwrap_err();
    assert!(e.fix.unwrap().contains("blackhole"));
    let e =
        p("[[faults]]\nkind = \"offline\"\nat = \"1s\"\nfor = \"1s\"\nwobble = 3\n").unwrap_err();
    assert!(e.message.contains("unknown field `wobble`"), "{e}");
}

#[test]
fn the_timeline_is_concrete_sorted_and_seeded() {
    // A 1 s + 1 s heartbeat, so 3 s blackholes are long enough to break
    // the connection (plan::check_blackholes).
    let text = "[target]\nping_interval = \"1s\"\nping_timeout = \"1s\"\n\
                [[faults]]\nkind = \"flapping\"\nmodes = [\"refuse\", \"blackhole\"]\ndown = \"3s..4s\"\nup = \"1s..3s\"\nat = \"1s\"\nfor = \"15s\"\n\
                [[faults]]\nkind = \"token-expiry\"\nusers = \"30%\"\nat = \"5s\"\nevery = \"5s\"\n";
    let a = p(text).unwrap();
    assert_eq!(
        a.timeline,
        p(text).unwrap().timeline,
        "same seed, same timeline"
    );
    assert!(a.timeline.windows(2).all(|w| w[0].at <= w[1].at));
    let starts = a
        .timeline
        .iter()
        .filter(|s| matches!(s.action, Action::NetStart { .. }))
        .count();
    let heals = a
        .timeline
        .iter()
        .filter(|s| matches!(s.action, Action::NetHeal { .. }))
        .count();
    assert!(starts >= 2 && starts == heals, "{starts} outages");
    let revokes: Vec<_> = a
        .timeline
        .iter()
        .filter_map(|s| match &s.action {
            Action::Revoke { users } => Some(users.len()),
            _ => None,
        })
        .collect();
    assert_eq!(
        revokes,
        [3, 3, 3, 3],
        "at 5, 10, 15 and 20 s (the end), 30% of 10"
    );
    assert!(a.needs_proxy());
}

#[test]
fn a_membership_is_never_removed_while_another_removal_holds_it() {
    // Ten users in one conversation: ten memberships. The first fault
    // holds 4 until 6 s, the second takes 4 more at 3 s, the third at
    // 4 s can only have the 2 nobody holds; at 7 s the first 4 are back.
    let faults = |third: u32, fourth: u32| {
        format!(
            "[[faults]]\nkind = \"membership\"\nusers = 4\nat = \"1s\"\nreadd_after = \"5s\"\n\
             [[faults]]\nkind = \"membership\"\nusers = 4\nat = \"3s\"\n\
             [[faults]]\nkind = \"membership\"\nusers = {third}\nat = \"4s\"\n\
             [[faults]]\nkind = \"membership\"\nusers = {fourth}\nat = \"7s\"\n"
        )
    };
    // Asking for more than is free is refused, not quietly shrunk.
    for (third, fourth, line, free) in [(6, 4, 16, 2), (2, 6, 20, 4)] {
        let e = p(&faults(third, fourth)).unwrap_err();
        assert_eq!((e.line, e.column), (line, 9), "{e}");
        assert!(
            e.message.contains(&format!("has only {free} memberships")),
            "{e}"
        );
        assert!(
            e.fix
                .as_deref()
                .unwrap()
                .contains(&format!("at most {free}")),
            "{e}"
        );
    }
    let plan = p(&faults(2, 4)).unwrap();
    let removed: Vec<Vec<(String, u32)>> = plan
        .timeline
        .iter()
        .filter_map(|s| match &s.action {
            Action::RemoveMembers { pairs } => Some(pairs.clone()),
            _ => None,
        })
        .collect();
    let sizes: Vec<usize> = removed.iter().map(Vec::len).collect();
    assert_eq!(sizes, [4, 4, 2, 4], "{removed:?}");
    let overlap = |a: &[(String, u32)], b: &[(String, u32)]| a.iter().any(|p| b.contains(p));
    assert!(!overlap(&removed[0], &removed[1]) && !overlap(&removed[0], &removed[2]));
    assert!(!overlap(&removed[1], &removed[2]));
    assert!(!overlap(&removed[3], &removed[1]) && !overlap(&removed[3], &removed[2]));
}

#[test]
fn network_faults_on_one_cohort_never_overlap() {
    let ping = "[target]\nping_interval = \"1s\"\nping_timeout = \"1s\"\n";
    // Two one-off faults on one cohort that overlap: refused.
    let e = p(&format!("{ping}[[faults]]\nkind = \"offline\"\nmode = \"blackhole\"\nat = \"2s\"\nfor = \"5s\"\n\
                         [[faults]]\nkind = \"offline\"\nmode = \"reset\"\nat = \"4s\"\nfor = \"1s\"\n"))
    .unwrap_err();
    assert!(e.message.contains("overlaps another network fault"), "{e}");
    assert_eq!(e.line, 14, "points at the second: {e}");
    // A recurring one gives way: its occurrences that would cut the
    // blackhole short are skipped, and the rest never overlap it.
    let plan = p(&format!("{ping}[[faults]]\nkind = \"offline\"\nmode = \"reset\"\nat = \"1s\"\nfor = \"1s\"\nevery = \"2s\"\n\
                            [[faults]]\nkind = \"offline\"\nmode = \"blackhole\"\nat = \"6s\"\nfor = \"5s\"\n"))
    .unwrap();
    let resets: Vec<u64> = plan
        .timeline
        .iter()
        .filter(|s| s.fault == 0 && matches!(s.action, Action::NetStart { .. }))
        .map(|s| s.at.as_secs())
        .collect();
    assert_eq!(
        resets,
        [1, 3, 13, 15, 17, 19],
        "5, 7, 9 and 11 s would overlap 6..11 s"
    );
}

#[test]
fn a_token_expiry_for_more_users_than_its_cohort_has_is_refused() {
    let e = p("[[cohorts]]\nname = \"a\"\nusers = 3\n\
               [[faults]]\nkind = \"token-expiry\"\ncohort = \"a\"\nusers = 5\nat = \"1s\"\n")
    .unwrap_err();
    assert_eq!((e.line, e.column), (11, 9), "{e}");
    assert!(e.message.contains("has only 3 users"), "{e}");
    assert!(
        p("[[faults]]\nkind = \"token-expiry\"\nusers = 10\nat = \"1s\"\n").is_ok(),
        "all ten is fine"
    );
}

#[test]
fn a_recurring_membership_fault_takes_what_is_left() {
    // Ten memberships, 4 removed for good every 2 s: the third occurrence
    // finds 2, and later ones none, as a long soak runs out.
    let plan =
        p("[[faults]]\nkind = \"membership\"\nusers = 4\nat = \"1s\"\nevery = \"2s\"\n").unwrap();
    let sizes: Vec<usize> = plan
        .timeline
        .iter()
        .filter_map(|s| match &s.action {
            Action::RemoveMembers { pairs } => Some(pairs.len()),
            _ => None,
        })
        .collect();
    assert_eq!(&sizes[..3], [4, 4, 2], "{sizes:?}");
    assert!(sizes[3..].iter().all(|&n| n == 0), "{sizes:?}");
}

/// A share that rounds to nobody would make its faults touch no one, and
/// the run would pass without testing them (the helper's scaled-down
/// smoke.toml): refused where it is written.
#[test]
fn a_cohort_or_fault_that_gets_no_users_is_refused() {
    let e = p("[[cohorts]]\nname = \"a\"\nusers = \"1%\"\n").unwrap_err();
    assert_eq!((e.line, e.column), (7, 9), "{e}");
    assert!(
        e.message
            .contains("cohort \"a\" gets no users: `users = \"1%\"` of 10 is 0"),
        "{e}"
    );
    let e = p("[[cohorts]]\nname = \"a\"\nusers = 0\n").unwrap_err();
    assert!(e.message.contains("gets no users"), "{e}");
    let e = p("[[faults]]\nkind = \"token-expiry\"\nusers = \"4%\"\nat = \"1s\"\n").unwrap_err();
    assert_eq!(e.line, 7, "{e}");
    assert!(
        e.message
            .contains("`users = \"4%\"` picks none of the 10 users"),
        "{e}"
    );
    assert!(e.fix.unwrap().contains("at least 1"));
    let e = p("[[faults]]\nkind = \"token-expiry\"\nusers = 0\nat = \"1s\"\nevery = \"5s\"\n")
        .unwrap_err();
    assert!(e.message.contains("picks none"), "{e}");
    assert!(p("[[faults]]\nkind = \"token-expiry\"\nusers = \"5%\"\nat = \"1s\"\n").is_ok());
}

#[test]
fn a_missing_key_names_the_kind_as_the_file_spells_it() {
    let e = p("[[faults]]\nkind = \"offline\"\nmode = \"reset\"\nat = \"1s\"\n").unwrap_err();
    assert!(
        e.message
            .starts_with("a fault of kind \"offline\" needs `for`"),
        "{e}"
    );
}
