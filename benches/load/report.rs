//! Collects the figures of a harness run and renders them as one Markdown report: the machine,
//! the throughput table, the open-loop latency, memory, Redis, revocation, and each target.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::process::Command;
use std::time::Duration;

use crate::Args;

/// One measured run of one server.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub rate: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Share of one core the server used.
    pub cpu: f64,
    pub rss: u64,
    /// Token cache misses per request (tokengate only).
    pub misses: Option<f64>,
}

/// Every scenario in the order it runs, with its nginx counterpart.
const SCENARIOS: [(&str, &str, &str); 6] = [
    ("plain", "public route", "`proxy_pass`"),
    ("hit", "valid token, cache hit", "static bearer `map`"),
    ("hit-limited", "the same with a rate limit (never reached)", "static bearer `map`"),
    ("miss", "valid token, cache miss to Redis", "`auth_request`"),
    ("invalid", "unknown token (negatively cached)", "`map` → 401"),
    ("revoked", "revoked token (cached as revoked)", "`map` → 401"),
];

pub struct Report {
    header: String,
    runs: BTreeMap<(&'static str, bool), Vec<Run>>,
    open_loop: BTreeMap<bool, Vec<Run>>,
    rate: u32,
    tokens: usize,
    pub idle_rss: u64,
    pub full_cache_rss: u64,
    pub fill_seconds: f64,
    pub redis_bytes_per_token: f64,
    pub redis_version: String,
    pub revocations: Vec<Duration>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let m = v.len() / 2;
    if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 }
}

fn percentile(v: &[Duration], q: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(((v.len().max(1) - 1) as f64 * q).round() as usize).copied().unwrap_or_default()
}

pub fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
            String::from_utf8_lossy(&text).lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_else(|_| "unknown".into())
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let cores = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string()))
        .unwrap_or_default();
    format!(
        "- Machine: {model}, {cores} cores, {mem_gib:.0} GiB, {os}, Linux {}\n\
         - Tools: {}, {}, {}\n\
         - tokengate: commit {} (release build)\n",
        first_line("uname", &["-r"]),
        first_line("nginx", &["-v"]),
        first_line("wrk", &["--version"]).split(" Copyright").next().unwrap_or(""),
        first_line("redis-server", &["--version"]).split(" sha=").next().unwrap_or(""),
        first_line("git", &["rev-parse", "--short", "HEAD"]),
    )
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1024.0 / 1024.0)
}

/// `None`: this run cannot tell (the target is stated for a scale the run did not use).
fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "not measured at this scale",
    }
}

impl Report {
    pub fn new(args: &Args) -> Self {
        let header = format!(
            "{}- Layout: the server under test (tokengate, or nginx as the reference proxy) alone on core 0; \
             wrk (1 thread, {} connections), the nginx upstream (fixed 200 response), Redis and the harness on core 1; \
             all over loopback\n\
             - Runs: {} repetitions of {} s per scenario and server, tokengate and nginx alternating which goes \
             first; {} tokens in Redis\n",
            machine(),
            args.connections,
            args.reps,
            args.duration.as_secs(),
            args.tokens,
        );
        Self {
            header,
            runs: BTreeMap::new(),
            open_loop: BTreeMap::new(),
            rate: args.rate,
            tokens: args.tokens,
            idle_rss: 0,
            full_cache_rss: 0,
            fill_seconds: 0.0,
            redis_bytes_per_token: 0.0,
            redis_version: String::new(),
            revocations: Vec::new(),
        }
    }

    pub fn add(&mut self, scenario: &'static str, tokengate: bool, run: Run) {
        self.runs.entry((scenario, tokengate)).or_default().push(run);
    }

    pub fn add_open_loop(&mut self, tokengate: bool, run: Run) {
        self.open_loop.entry(tokengate).or_default().push(run);
    }

    fn rate(&self, scenario: &str, tokengate: bool) -> f64 {
        let runs = self.runs.iter().find(|((s, t), _)| *s == scenario && *t == tokengate).map(|(_, r)| r);
        median(runs.map(|r| r.iter().map(|r| r.rate).collect()).unwrap_or_default())
    }

    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "## Setup\n\n{}", self.header);
        let _ = writeln!(o, "## Throughput (closed loop, wrk)\n");
        let _ = writeln!(
            o,
            "| scenario | server | req/s median | spread (min–max) | p50 | p99 | vs its nginx counterpart | vs nginx `proxy_pass` | server CPU | server RSS |"
        );
        let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        let plain = self.rate("plain", false);
        for (name, subject, counterpart) in SCENARIOS {
            let theirs = self.rate(name, false);
            for tokengate in [true, false] {
                let Some(runs) = self.runs.get(&(name, tokengate)) else { continue };
                let rate = median(runs.iter().map(|r| r.rate).collect());
                let lo = runs.iter().map(|r| r.rate).fold(f64::INFINITY, f64::min);
                let hi = runs.iter().map(|r| r.rate).fold(0.0, f64::max);
                let server = if tokengate { format!("tokengate: {subject}") } else { format!("nginx: {counterpart}") };
                let _ = writeln!(
                    o,
                    "| {name} | {server} | {rate:.0} | {lo:.0}–{hi:.0} ({:.1}%) | {:.0} µs | {:.0} µs | {:.2}x | {:.2}x | {:.0}% | {} |",
                    (hi - lo) / rate * 100.0,
                    median(runs.iter().map(|r| r.p50_us).collect()),
                    median(runs.iter().map(|r| r.p99_us).collect()),
                    rate / theirs,
                    rate / plain,
                    median(runs.iter().map(|r| r.cpu * 100.0).collect()),
                    mib(runs.iter().map(|r| r.rss).max().unwrap_or(0)),
                );
            }
        }
        if let (Some(hit), Some(limited)) = (self.runs.get(&("hit", true)), self.runs.get(&("hit-limited", true))) {
            let (hit, limited) =
                (median(hit.iter().map(|r| r.rate).collect()), median(limited.iter().map(|r| r.rate).collect()));
            let _ = writeln!(
                o,
                "\nMetering on the cache-hit path: a rate-limited token runs at {:.3}x an unlimited one ({limited:.0} vs {hit:.0} req/s).",
                limited / hit
            );
        }
        if let Some(runs) = self.runs.get(&("miss", true)) {
            let misses = median(runs.iter().filter_map(|r| r.misses).collect());
            let _ = writeln!(o, "\nToken cache misses per request in tokengate's `miss` runs: {misses:.3} (median).");
        }

        let _ = writeln!(o, "\n## Latency at {} requests/s (open loop)\n", self.rate);
        let _ = writeln!(o, "| server | p50 median | p99 median | p99 spread (min–max) | server CPU |");
        let _ = writeln!(o, "|---|---:|---:|---:|---:|");
        for (tokengate, label) in [(true, "tokengate: valid token, cache hit"), (false, "nginx: `proxy_pass`")] {
            let Some(runs) = self.open_loop.get(&tokengate) else { continue };
            let p99s: Vec<f64> = runs.iter().map(|r| r.p99_us).collect();
            let _ = writeln!(
                o,
                "| {label} | {:.0} µs | {:.0} µs | {:.0}–{:.0} µs | {:.0}% |",
                median(runs.iter().map(|r| r.p50_us).collect()),
                median(p99s.clone()),
                p99s.iter().copied().fold(f64::INFINITY, f64::min),
                p99s.iter().copied().fold(0.0, f64::max),
                median(runs.iter().map(|r| r.cpu * 100.0).collect()),
            );
        }
        let p99 =
            |t: bool| median(self.open_loop.get(&t).map(|r| r.iter().map(|r| r.p99_us).collect()).unwrap_or_default());
        let p99_gap = p99(true) - p99(false);

        let rev_p50 = percentile(&self.revocations, 0.50);
        let rev_p99 = percentile(&self.revocations, 0.99);
        let rev_max = self.revocations.iter().max().copied().unwrap_or_default();
        let _ = writeln!(o, "\n## Memory, Redis, revocation\n");
        let _ = writeln!(o, "- tokengate RSS, idle (Redis store, just started): {}", mib(self.idle_rss));
        let _ = writeln!(
            o,
            "- tokengate RSS with all {} tokens cached: {} (filled in {:.0} s)",
            self.tokens,
            mib(self.full_cache_rss),
            self.fill_seconds
        );
        let _ = writeln!(
            o,
            "- Redis ({}) memory per token: {:.0} bytes (`used_memory` growth over the {} tokens)",
            self.redis_version, self.redis_bytes_per_token, self.tokens
        );
        let _ = writeln!(
            o,
            "- Revocation propagation over {} revocations (revoked through instance A's admin port, instance B \
             probed every millisecond): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.revocations.len(),
            rev_p50.as_secs_f64() * 1e3,
            rev_p99.as_secs_f64() * 1e3,
            rev_max.as_secs_f64() * 1e3,
        );

        let ratio = |s: &str| self.rate(s, true) / plain;
        let idle_mb = self.idle_rss as f64 / 1e6;
        let full_mib = self.full_cache_rss as f64 / 1024.0 / 1024.0;
        let rows = [
            (
                "valid token, cache hit ≥ 1.0x nginx `proxy_pass`",
                format!("{:.2}x", ratio("hit")),
                Some(ratio("hit") >= 1.0),
            ),
            (
                "p99 at the fixed rate ≤ 150 µs above nginx `proxy_pass`",
                format!("{p99_gap:+.0} µs"),
                Some(p99_gap <= 150.0),
            ),
            (
                "cache miss to Redis ≥ 0.75x nginx `proxy_pass`",
                format!("{:.2}x", ratio("miss")),
                Some(ratio("miss") >= 0.75),
            ),
            (
                "unknown token ≥ 3x nginx `proxy_pass`",
                format!("{:.2}x", ratio("invalid")),
                Some(ratio("invalid") >= 3.0),
            ),
            (
                "revoked token ≥ 3x nginx `proxy_pass`",
                format!("{:.2}x", ratio("revoked")),
                Some(ratio("revoked") >= 3.0),
            ),
            ("RSS idle ≤ 10 MB", format!("{idle_mb:.1} MB"), Some(idle_mb <= 10.0)),
            (
                "RSS with 1,000,000 tokens cached ≤ 200 MiB",
                format!("{full_mib:.0} MiB with {} cached", self.tokens),
                (self.tokens >= 1_000_000).then_some(full_mib <= 200.0),
            ),
            (
                "Redis ≤ 200 bytes per token",
                format!("{:.0} bytes", self.redis_bytes_per_token),
                Some(self.redis_bytes_per_token <= 200.0),
            ),
            (
                "revocation propagation p99 ≤ 100 ms",
                format!("{:.1} ms", rev_p99.as_secs_f64() * 1e3),
                Some(rev_p99 <= Duration::from_millis(100)),
            ),
        ];
        let _ = writeln!(o, "\n## Targets\n");
        let _ = writeln!(o, "| target | measured | |");
        let _ = writeln!(o, "|---|---:|---|");
        for (target, measured, met) in rows {
            let _ = writeln!(o, "| {target} | {measured} | {} |", verdict(met));
        }
        o
    }
}
