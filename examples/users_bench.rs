//! Benchmark: how many users one harness process holds, what each costs.
//!
//! Run: `cargo run --release --example users_bench -- [USERS] [RAMP_PER_S] [CHAT_SECONDS] [restart] [every=SECONDS] [idle]`
//! (defaults 5000 2500 30, one message per user every 10 s; `bench/figure.sh`
//! holds the exact commands of README's figures). It runs a real scenario against the embedded
//! server (a separate process, so its CPU and memory are not counted here)
//! and samples this process's RSS and CPU time every 100 ms. It prints:
//! - the connect ramp: users/s from the first to the last connect, and errors;
//! - RSS per connected user: (RSS with everyone connected − RSS before) / users;
//! - harness CPU per delivered message at steady chat load (the window from
//!   5 s after everyone connected to the end of the chat phase, or to the
//!   restart);
//! - with `restart`: the embedded server is SIGKILLed halfway through the
//!   chat phase and restarted 1 s later, so every user reconnects (backoff,
//!   connect, rejoin, REST sync, resend); harness CPU per user-reconnect is
//!   the CPU from the kill until everyone is back, less what the chat load
//!   alone costs over that time, divided by the reconnects;
//! - harness CPU per connected user-second over the same steady window;
//!   with `idle` nobody sends (`messages = 0`), so it is what connected,
//!   silent users cost (heartbeats, timers, the run's own bookkeeping), the
//!   part of a chat run's CPU that is not per delivery.
//!
//! Not a test: the machine is shared and noisy, so the figures are reported,
//! never asserted.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use reconnoiter::run::{RunOptions, run};
use reconnoiter::user::stats::Stats;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time of this process (clock ticks of 10 ms).
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of stat; after the `)` they are at index 11 and 12.
    Duration::from_millis((f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0)) * 10)
}

/// Bytes the allocator has handed out and not got back (glibc's count):
/// RSS less this is the allocator's free lists, fragmentation and code.
fn heap_kib() -> u64 {
    // SAFETY: mallinfo2 has no preconditions; it only reads the allocator's state.
    let info = unsafe { libc::mallinfo2() };
    ((info.uordblks + info.hblkhd) / 1024) as u64
}

#[derive(Clone, Copy)]
struct Sample {
    at: Duration,
    rss: u64,
    /// Read once a second (mallinfo2 walks every arena under its lock).
    heap: Option<u64>,
    cpu: Duration,
    connected: i64,
    delivered: u64,
    reconnects: u64,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let users: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5000);
    let ramp: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2500);
    let chat: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(30);
    let restart = args.iter().skip(4).any(|a| a == "restart");
    let idle = args.iter().skip(4).any(|a| a == "idle");
    // Seconds between one user's messages: the chat load per user.
    let every: u32 = args
        .iter()
        .skip(4)
        .find_map(|a| a.strip_prefix("every=")?.parse().ok())
        .unwrap_or(10);
    let fault_at = chat / 2;
    let mut scenario = format!(
        "[run]\nduration = \"{chat}s\"\nramp = \"{ramp}/s\"\ndrain = \"20s\"\n\
         [users]\ncount = {users}\nconversations = {}\nmembers = 10\nsend_rate = \"1/{every}s\"\nmessage_size = 64\n",
        users / 10
    );
    if idle {
        scenario += "messages = 0\n";
    }
    if restart {
        scenario += &format!(
            "[[faults]]\nkind = \"server-restart\"\nmode = \"crash\"\nat = \"{fault_at}s\"\ndown = \"1s\"\n"
        );
    }
    let plan =
        reconnoiter::scenario::parse(std::path::Path::new("users_bench.toml"), &scenario).unwrap();
    // USERS_BENCH_REPORTS=DIR keeps the run's report (history, timeline,
    // harness load per second) for a look at where the time went.
    let reports = tempfile::tempdir().unwrap();
    let reports_dir = std::env::var_os("USERS_BENCH_REPORTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| reports.path().to_owned());
    let binary = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("reconnoiter");
    assert!(
        binary.exists(),
        "build the binary first: cargo build --release ({})",
        binary.display()
    );
    let stats = Arc::new(Stats::default());
    let opts = RunOptions {
        target_url: None,
        reports_dir: reports_dir.clone(),
        server_binary: binary,
        quiet: true,
        toxiproxy: None,
        proxy_capacity: None,
        stats: Some(stats.clone()),
        shard: None,
        start_at: None,
    };

    let before = rss_kib();
    let heap_before = heap_kib();
    let start = Instant::now();
    let samples = Arc::new(std::sync::Mutex::new(Vec::<Sample>::new()));
    let sampler = {
        let (samples, stats) = (samples.clone(), stats.clone());
        tokio::spawn(async move {
            for tick in 0u64.. {
                samples.lock().unwrap().push(Sample {
                    at: start.elapsed(),
                    rss: rss_kib(),
                    heap: (tick % 10 == 0).then(heap_kib),
                    cpu: cpu(),
                    connected: stats.connected.load(Relaxed),
                    delivered: stats.delivered.load(Relaxed),
                    reconnects: stats.reconnects.load(Relaxed),
                });
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let outcome = run(plan, opts, std::future::pending()).await.unwrap();
    sampler.abort();
    let samples = samples.lock().unwrap().clone();
    let s = outcome.summary.live;

    let first = samples.iter().find(|x| x.connected > 0).unwrap();
    // Everyone connected, or (when some never did) the most that were.
    let held = samples.iter().map(|x| x.connected).max().unwrap_or(0);
    if held < users as i64 {
        eprintln!(
            "only {held} of {users} users were connected at once ({} connect failures, exit {:?})",
            s.connect_failures, outcome.exit
        );
    }
    let full = samples.iter().find(|x| x.connected >= held).unwrap();
    let ramp_secs = (full.at - first.at).as_secs_f64().max(0.1);
    let steady_from = full.at + Duration::from_secs(5);
    let chat_start = full
        .at
        .max(Duration::from_secs_f64(users as f64 / ramp as f64));
    let chat_end = chat_start + Duration::from_secs(chat as u64);
    // With a restart, the steady window ends half a second before the kill.
    let steady_end = if restart {
        chat_start + Duration::from_secs(fault_at as u64) - Duration::from_millis(500)
    } else {
        chat_end
    };
    let last = samples.last().unwrap();
    let a = samples.iter().find(|x| x.at >= steady_from).unwrap_or(last);
    let b = samples
        .iter()
        .rev()
        .find(|x| x.at <= steady_end && x.at > a.at)
        .unwrap_or(last);
    let a = if a.at < b.at { a } else { full };
    let steady_cpu_per_s = (b.cpu - a.cpu).as_secs_f64() / (b.at - a.at).as_secs_f64();
    let cpu_per_msg =
        (b.cpu - a.cpu).as_secs_f64() * 1e6 / (b.delivered - a.delivered).max(1) as f64;
    let peak = samples.iter().map(|x| x.rss).max().unwrap_or(0);

    let load = if idle {
        "no messages (idle)".to_owned()
    } else {
        format!("1 msg/{every}s per user")
    };
    println!(
        "users_bench: {users} users, ramp {ramp}/s, chat {chat}s, 10 members per conversation, {load}"
    );
    println!(
        "verdict: {:?} {:?}; sent {} acked {} delivered {}/{} connect failures {}; {}",
        outcome.exit,
        outcome.summary.verdict.kinds(),
        s.sent,
        s.acked,
        s.delivered,
        s.expected,
        s.connect_failures,
        outcome.summary.verdict.harness.reasons.join("; ")
    );
    println!(
        "steady window {:.1}s..{:.1}s: {} deliveries, {:.2}s CPU",
        a.at.as_secs_f64(),
        b.at.as_secs_f64(),
        b.delivered - a.delivered,
        (b.cpu - a.cpu).as_secs_f64()
    );
    println!(
        "rss: before {before} KiB, all connected {} KiB, peak {peak} KiB",
        full.rss
    );
    println!(
        "connect ramp: {:.0} users/s sustained ({} users in {ramp_secs:.2}s), {} connect errors",
        held as f64 / ramp_secs,
        held,
        s.connect_failures
    );
    println!(
        "heap in use per connected user: {:.1} KiB (glibc mallinfo2; the rest of RSS is the allocator's free memory and the runtime)",
        samples
            .iter()
            .filter(|x| x.at >= full.at)
            .find_map(|x| x.heap)
            .unwrap_or(0)
            .saturating_sub(heap_before) as f64
            / held.max(1) as f64
    );
    println!("connected users one process held: {held} of {users}");
    println!(
        "rss per connected user: {:.1} KiB",
        (full.rss.saturating_sub(before)) as f64 / held.max(1) as f64
    );
    if restart {
        // From the last sample before anyone noticed the kill to the first
        // with every user reconnected and connected again.
        let lost = samples
            .iter()
            .position(|x| x.at > b.at && x.connected < users as i64)
            .expect("the restart disconnected users");
        let c = samples[lost.saturating_sub(1)];
        let d = samples[lost..]
            .iter()
            .find(|x| x.reconnects >= c.reconnects + users as u64 && x.connected >= users as i64)
            .copied()
            .unwrap_or(*samples.last().unwrap());
        let window = (d.at - c.at).as_secs_f64();
        let cpu = (d.cpu - c.cpu).as_secs_f64();
        let reconnects = d.reconnects - c.reconnects;
        println!(
            "restart: {reconnects} reconnects in {window:.2}s, {cpu:.2}s CPU ({:.2}s of it the chat load)",
            steady_cpu_per_s * window
        );
        println!("harness cpu per delivered message: {cpu_per_msg:.2} µs");
        println!(
            "harness cpu per user-reconnect: {:.0} µs",
            (cpu - steady_cpu_per_s * window).max(0.0) * 1e6 / reconnects.max(1) as f64
        );
    } else if b.delivered > a.delivered {
        println!("harness cpu per delivered message: {cpu_per_msg:.2} µs");
    } else {
        println!("harness cpu per delivered message: none delivered in the window");
    }
    println!(
        "harness cpu per connected user-second: {:.2} µs",
        steady_cpu_per_s * 1e6 / held.max(1) as f64
    );
}
