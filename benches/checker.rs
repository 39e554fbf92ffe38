//! The checker's speed and memory on a synthetic soak-sized history.
//!
//! Run: `cargo bench --bench checker` (figures last). It builds histories of
//! users chatting in conversations (each message: sent, acked, one delivery
//! per member) and measures, on one core:
//! - delivery events checked per second by `Checker::observe` (the live
//!   path, and `report merge`'s after parsing), median of 5 runs;
//! - the same from JSON lines (parse + check) on one core: one event parsed
//!   over and over, a fresh event per line, and, for comparison, with
//!   serde's derived deserializer that the checker used first;
//! - `check_file` on those lines in a file, which parses on a thread of its
//!   own (`history::events`, as `report merge` does per shard), median of 5;
//! - the heap the checker holds per accepted message, that deliveries do
//!   not add to it (10 vs 50 members per conversation, same message count),
//!   and its growth over a long run (2 M messages, 22 M events).
//!
//! The last line is the check_file throughput.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::Instant;

use reconnoiter::check::{Checker, Ending, Rules};
use reconnoiter::history::{Event, EventKind, Header, Via};

/// Counts live heap bytes, so memory is measured exactly rather than via RSS.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn header(users: u32) -> Header {
    Header {
        history_version: reconnoiter::history::HISTORY_VERSION,
        run_id: "bench".into(),
        scenario: "bench".into(),
        seed: 1,
        started_at_ms: 0,
        users,
        cohorts: vec![],
        checks: Vec::new(),
        shard: None,
        start_at_ms: None,
        driver: None,
        reconnoiter_version: "bench".into(),
    }
}

/// A history: `users` users in conversations of `members`, `messages`
/// messages, handed to `f` one event at a time (a long run does not fit in
/// memory as a `Vec<Event>`).
fn each_event(users: u32, members: u32, messages: u32, mut f: impl FnMut(Event)) {
    let convs = users / members;
    for c in 0..convs {
        f(Event {
            t: 0,
            u: u32::MAX,
            kind: EventKind::Members {
                conversation: format!("c{c}"),
                users: (c * members..(c + 1) * members).collect(),
            },
        });
    }
    for m in 0..messages {
        let c = m % convs;
        let sender = c * members + (m / convs) % members;
        let t = 1_000 + m as u64 * 100;
        // As a run writes them: with the run's tag (`Ctx::temp_id`).
        let temp = format!("u{sender}-{m}.5eed7a95");
        let conversation = format!("c{c}");
        f(Event {
            t,
            u: sender,
            kind: EventKind::Sent {
                temp_id: temp.clone(),
                conversation: conversation.clone(),
                scheduled: t,
            },
        });
        for r in c * members..(c + 1) * members {
            f(Event {
                t: t + 50,
                u: r,
                kind: EventKind::Delivered {
                    id: format!("m{m}"),
                    temp_id: Some(temp.clone()),
                    conversation: conversation.clone(),
                    sender: format!("u{sender}"),
                    seq: Some((m / convs) as i64 + 1),
                    via: Via::Live,
                    dup: false,
                },
            });
        }
        f(Event {
            t: t + 60,
            u: sender,
            kind: EventKind::Acked {
                temp_id: temp,
                conversation,
                id: format!("m{m}"),
                seq: Some((m / convs) as i64 + 1),
            },
        });
    }
}

fn history(users: u32, members: u32, messages: u32) -> Vec<Event> {
    let mut h = Vec::new();
    each_event(users, members, messages, |e| h.push(e));
    h
}

fn deliveries(h: &[Event]) -> usize {
    h.iter()
        .filter(|e| matches!(e.kind, EventKind::Delivered { .. }))
        .count()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let (users, members, messages) = (5_000, 10, 200_000);
    let h = history(users, members, messages);
    let n = deliveries(&h);

    let mut rates = Vec::new();
    let mut all = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let mut c = Checker::new(&header(users), Rules::default());
        for e in &h {
            c.observe(e);
        }
        let (v, _) = c.finish(Ending::default());
        let s = start.elapsed().as_secs_f64();
        assert!(v.kinds().is_empty(), "{:?}", v.kinds());
        rates.push(n as f64 / s);
        all.push(h.len() as f64 / s);
    }

    let lines: Vec<String> = h
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    // One core, parse then check in turn: each line parsed over the
    // previous event (history::parse::event_into, reusing its strings, as
    // the parsing thread of check_file and report merge does); a fresh
    // event per line (history::parse::event); and serde's derived
    // deserializer (the path before either), same lines.
    let parse_rate = |parse: &dyn Fn(&str, &mut Event)| {
        let mut v = Vec::new();
        for _ in 0..3 {
            let start = Instant::now();
            let mut c = Checker::new(&header(users), Rules::default());
            let mut e = Event {
                t: 0,
                u: 0,
                kind: EventKind::Stopped,
            };
            for l in &lines {
                parse(l, &mut e);
                c.observe(&e);
            }
            let _ = c.finish(Ending::default());
            v.push(n as f64 / start.elapsed().as_secs_f64());
        }
        median(v)
    };
    let into_rate = parse_rate(&|l, e| reconnoiter::history::parse::event_into(l, e).unwrap());
    let flat_rate = parse_rate(&|l, e| *e = reconnoiter::history::parse::event(l).unwrap());
    let serde_rate = parse_rate(&|l, e| *e = serde_json::from_str(l).unwrap());

    // `check_file` itself, on the same lines in a file: it parses on a
    // thread of its own (`history::events`) while the checker checks the
    // batch before.
    let file = tempfile::NamedTempFile::new().unwrap();
    {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(file.as_file());
        serde_json::to_writer(&mut w, &header(users)).unwrap();
        w.write_all(b"\n").unwrap();
        for l in &lines {
            w.write_all(l.as_bytes()).unwrap();
            w.write_all(b"\n").unwrap();
        }
    }
    drop(lines);
    let mut file_rates = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let (_, v, _) =
            reconnoiter::check::check_file(file.path(), Rules::default(), Ending::default())
                .unwrap();
        assert!(v.kinds().is_empty(), "{:?}", v.kinds());
        file_rates.push(n as f64 / start.elapsed().as_secs_f64());
    }
    let file_rate = median(file_rates);

    let events = h.len();
    drop(h);

    // Heap held by the checker after reading everything, per message; the
    // events are made on the fly, so only the checker's heap is counted.
    let mem = |members: u32, messages: u32| {
        let before = LIVE.load(Relaxed);
        let mut c = Checker::new(&header(10_000), Rules::default());
        let mut held = 0;
        each_event(10_000, members, messages, |e| {
            c.observe(&e);
            drop(e);
            held = LIVE.load(Relaxed) - before;
        });
        drop(c);
        held as f64
    };
    let m10_small = mem(10, 50_000);
    let m10 = mem(10, 250_000);
    let m50 = mem(50, 250_000);
    let m10_long = mem(10, 2_000_000);
    let per_message = (m10 - m10_small) / 200_000.0;
    let per_message_long = (m10_long - m10) / 1_750_000.0;

    println!();
    println!(
        "history: {users} users, conversations of {members}, {messages} messages, {n} deliveries, {} events",
        events
    );
    println!(
        "observe (live path): {:.2} M delivery events/s, {:.2} M events/s (median of 5, one core)",
        median(rates) / 1e6,
        median(all) / 1e6
    );
    println!(
        "parse + observe on one core: {:.2} M delivery events/s over one reused event; {:.2} M/s a fresh event per line; {:.2} M/s with serde's derived Event (the old path) (median of 3)",
        into_rate / 1e6,
        flat_rate / 1e6,
        serde_rate / 1e6
    );
    println!(
        "checker heap: {:.1} MiB after 250k messages x 10 members, {:.1} MiB x 50 members (5x the deliveries), {:.1} MiB after 2M messages x 10",
        m10 / 1048576.0,
        m50 / 1048576.0,
        m10_long / 1048576.0
    );
    println!(
        "checker heap per accepted message: {per_message:.0} bytes from 50k to 250k messages, {per_message_long:.0} bytes from 250k to 2M (grows with messages, not deliveries)"
    );
    println!(
        "check_file throughput: {:.2} M delivery events/s, {:.2} M events/s read from a file, parsed and checked (parsing on a thread of its own; median of 5)",
        file_rate / 1e6,
        file_rate * events as f64 / n as f64 / 1e6
    );
}
