//! The load harness: tokengate beside nginx on one machine over loopback
//! (`./scripts/bench-load.sh`, or `cargo bench --bench load -- --help`).
//!
//! Core 0 runs the server under test: tokengate, or nginx as the reference proxy, each alone on
//! it. Core 1 runs everything else: wrk, the fixed-response upstream (nginx), Redis and this
//! harness. Every scenario runs beside its nginx counterpart, alternating which goes first,
//! for `--reps` repetitions:
//!
//! | scenario  | tokengate                                        | nginx counterpart                 |
//! |-----------|--------------------------------------------------|-----------------------------------|
//! | `plain`   | a public route                                   | `proxy_pass`                      |
//! | `hit`     | one valid token (a cache hit)                    | a static bearer `map`             |
//! | `hit-limited` | the same with a rate limit never reached (metering cost) | the same `map`        |
//! | `miss`    | a different token per request, from Redis        | `auth_request` to the upstream    |
//! | `invalid` | an unknown (well-formed) token, negatively cached| the `map` refusing with 401       |
//! | `revoked` | a revoked token, cached as revoked               | the `map` refusing with 401       |
//!
//! Then: latency at a fixed rate (open loop), the cache filled with every token, the
//! propagation of revocations from one instance to another, and Redis bytes per token. A run
//! during which another process used a significant share of the CPU stops the harness.

mod nginx;
mod openloop;
mod procs;
mod report;
mod seed;
mod wrk;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Parser;
use futures_util::StreamExt;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use procs::{Contention, Proc, free_addr};
use report::{Report, Run};
use wrk::{Load, Tokens};

/// The core of the server under test, and the core of everything else.
const SERVER_CORE: usize = 0;
const LOAD_CORE: usize = 1;
const OPERATOR_KEY: &str = "bench-operator-key-0123456789";
/// Set when this process has re-executed itself pinned to the load core.
const PINNED_ENV: &str = "TOKENGATE_BENCH_PINNED";

#[derive(Parser, Debug)]
#[command(about = "tokengate beside nginx: throughput, latency, memory, revocation propagation")]
struct Args {
    /// Length of each measured run.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Repetitions of every scenario.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Tokens in the store.
    #[arg(long, default_value_t = 1_000_000)]
    tokens: usize,
    /// wrk connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Rate of the open-loop latency runs, requests per second.
    #[arg(long, default_value_t = 5_000)]
    rate: u32,
    /// Revocations in the propagation test.
    #[arg(long, default_value_t = 100)]
    revocations: usize,
    /// Only seed the tokens into a fresh Redis and print Redis bytes per token (about a minute
    /// for 1,000,000 tokens), skipping every other measurement.
    #[arg(long)]
    seed_only: bool,
    /// Where the Markdown report is written (besides standard output).
    #[arg(long, default_value = "target/bench-load/report.md")]
    out: PathBuf,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if std::env::var_os(PINNED_ENV).is_none() {
        return reexec_pinned();
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run(args))
}

/// Runs this same program again under `taskset` on the load core, and exits with its status.
fn reexec_pinned() -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 {
        bail!(
            "the harness needs two cores (one for the server under test, one for the load); this machine has {cores}"
        );
    }
    for tool in ["taskset", "wrk", "nginx", "redis-server"] {
        if which(tool).is_none() {
            bail!("{tool} is not installed (Debian: apt-get install -y util-linux wrk nginx redis-server)");
        }
    }
    let status = Command::new("taskset")
        .arg("-c")
        .arg(LOAD_CORE.to_string())
        .arg(std::env::current_exe()?)
        .args(std::env::args_os().skip(1))
        .env(PINNED_ENV, "1")
        .status()?;
    std::process::exit(status.code().unwrap_or(1));
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]).map(|d| d.join(tool)).find(|p| p.is_file())
}

/// The servers and files of one harness run.
struct Bench {
    args: Args,
    dir: tempfile::TempDir,
    script: PathBuf,
    ticks: f64,
    http: Client<HttpConnector, Full<Bytes>>,
    redis_url: String,
    upstream: SocketAddr,
}

async fn run(args: Args) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/load/wrk.lua");
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    // Idle connections are dropped well before tokengate closes them (`header_read_timeout`).
    let http = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(1)).build(http);
    let mut report = Report::new(&args);

    eprintln!("starting redis-server and the upstream on core {LOAD_CORE}");
    let redis_addr = free_addr()?;
    let redis_log = dir.path().join("redis.log");
    let mut redis = Proc::spawn(
        "redis-server",
        LOAD_CORE,
        &which("redis-server").context("redis-server")?,
        &[
            "--bind",
            "127.0.0.1",
            "--port",
            &redis_addr.port().to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir.path().display().to_string(),
        ],
        &redis_log,
    )?;
    redis.wait_listening(redis_addr, &redis_log)?;
    let redis_url = format!("redis://{redis_addr}/0");

    let upstream = free_addr()?;
    let _upstream = start_nginx("upstream", LOAD_CORE, dir.path(), upstream, |d| nginx::upstream(d, upstream))?;

    let bench = Bench { args, dir, script, ticks: procs::ticks_per_second(), http, redis_url, upstream };

    eprintln!("seeding {} tokens into Redis", bench.args.tokens);
    let seeded = seed::seed(&bench.redis_url, bench.args.tokens, bench.args.revocations, bench.dir.path()).await?;
    eprintln!("  {:.0} s, {:.0} bytes per token", seeded.seconds, seeded.bytes_per_token);
    if bench.args.seed_only {
        println!(
            "Redis bytes per token: {:.1} ({} tokens, {})",
            seeded.bytes_per_token,
            seeded.count,
            report::first_line("redis-server", &["--version"]).split(" sha=").next().unwrap_or("")
        );
        return Ok(());
    }
    report.redis_bytes_per_token = seeded.bytes_per_token;
    report.redis_version =
        report::first_line("redis-server", &["--version"]).split(" sha=").next().unwrap_or("").to_string();

    let mut gate = bench.start_tokengate("a")?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    report.idle_rss = gate.proc.rss();
    let reference_addr = free_addr()?;
    let reference = start_nginx("reference", SERVER_CORE, bench.dir.path(), reference_addr, |d| {
        nginx::reference(d, reference_addr, bench.upstream, &[&seeded.valid, &seeded.limited])
    })?;

    let slice = seeded.count / (bench.args.reps + 1);
    let scenarios = [
        Scenario { name: "plain", tg_path: "/public/x", ng_path: "/public/x", tokens: Tokens::None, expect: 200 },
        Scenario {
            name: "hit",
            tg_path: "/api/x",
            ng_path: "/api/x",
            tokens: Tokens::One(seeded.valid.clone()),
            expect: 200,
        },
        Scenario {
            name: "hit-limited",
            tg_path: "/api/x",
            ng_path: "/api/x",
            tokens: Tokens::One(seeded.limited.clone()),
            expect: 200,
        },
        Scenario {
            name: "miss",
            tg_path: "/api/x",
            ng_path: "/authreq/x",
            tokens: Tokens::Slice { file: seeded.tokens_file.clone(), first: 0, count: slice, once: false },
            expect: 200,
        },
        Scenario {
            name: "invalid",
            tg_path: "/api/x",
            ng_path: "/api/x",
            tokens: Tokens::One(seeded.unknown.clone()),
            expect: 401,
        },
        Scenario {
            name: "revoked",
            tg_path: "/api/x",
            ng_path: "/api/x",
            tokens: Tokens::One(seeded.revoked.clone()),
            expect: 401,
        },
    ];

    let servers = Servers { gate: &gate, reference: &reference, reference_addr };
    bench.throughput(&mut report, &scenarios, &servers, slice).await?;
    bench.open_loop(&mut report, &servers, &seeded.valid).await?;
    drop(reference);

    eprintln!("filling the cache with all {} tokens", seeded.count);
    let started = Instant::now();
    bench.fill_cache(&gate, &seeded.tokens_file).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    report.full_cache_rss = gate.proc.rss();
    report.fill_seconds = started.elapsed().as_secs_f64();
    eprintln!("  {:.0} s, RSS {} MiB", report.fill_seconds, report.full_cache_rss >> 20);
    // A fresh instance A for the revocation test: the million cached tokens are not needed.
    drop(std::mem::replace(&mut gate, bench.start_tokengate("a")?));

    eprintln!("revocation propagation over {} revocations", seeded.to_revoke.len());
    let other = bench.start_tokengate("b")?;
    for (id, secret) in &seeded.to_revoke {
        report.revocations.push(bench.propagation(&gate, &other, id, secret).await?);
    }

    let text = report.render();
    println!("{text}");
    if let Some(parent) = bench.args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&bench.args.out, &text)?;
    eprintln!("report written to {}", bench.args.out.display());
    Ok(())
}

/// One scenario: the tokengate path, the nginx path, what is sent and what must come back.
struct Scenario {
    name: &'static str,
    tg_path: &'static str,
    ng_path: &'static str,
    tokens: Tokens,
    expect: u16,
}

impl Scenario {
    /// The tokens of repetition `rep`: the cache-miss scenario takes a fresh slice of the tokens
    /// file each time (the warm-up takes the slice after the last repetition's).
    fn tokens_for_rep(&self, rep: usize, slice: usize) -> Tokens {
        match &self.tokens {
            Tokens::Slice { file, once, .. } => {
                Tokens::Slice { file: file.clone(), first: slice * rep, count: slice, once: *once }
            }
            other => other.clone(),
        }
    }
}

/// A running tokengate instance.
struct Gate {
    proc: Proc,
    addr: SocketAddr,
    admin: SocketAddr,
}

fn start_nginx(
    name: &'static str,
    core: usize,
    dir: &Path,
    listen: SocketAddr,
    config: impl FnOnce(&Path) -> String,
) -> Result<Proc> {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir)?;
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, config(&dir))?;
    let log = dir.join("stderr.log");
    let nginx = which("nginx").context("nginx")?;
    let mut proc = Proc::spawn(
        if name == "upstream" { "nginx upstream" } else { "nginx reference" },
        core,
        &nginx,
        &["-p", &dir.display().to_string(), "-c", &conf.display().to_string(), "-e", "stderr"],
        &log,
    )?;
    proc.wait_listening(listen, &log)?;
    Ok(proc)
}

/// The two servers under test.
struct Servers<'a> {
    gate: &'a Gate,
    reference: &'a Proc,
    reference_addr: SocketAddr,
}

impl Servers<'_> {
    /// The process and address of tokengate, or of the reference nginx.
    fn pick(&self, tokengate: bool) -> (&Proc, SocketAddr) {
        if tokengate { (&self.gate.proc, self.gate.addr) } else { (self.reference, self.reference_addr) }
    }
}

/// Which server goes first in repetition `rep`: tokengate, then nginx, then the other way round.
fn order(rep: usize) -> [bool; 2] {
    let tokengate_first = rep.is_multiple_of(2);
    [tokengate_first, !tokengate_first]
}

fn server_name(tokengate: bool) -> &'static str {
    if tokengate { "tokengate" } else { "nginx" }
}

impl Bench {
    fn load<'a>(
        &self,
        target: SocketAddr,
        path: &'a str,
        s: &Scenario,
        rep: usize,
        slice: usize,
        d: Duration,
    ) -> Load<'a> {
        Load {
            core: LOAD_CORE,
            threads: 1,
            connections: self.args.connections,
            duration: d,
            target,
            path,
            tokens: s.tokens_for_rep(rep, slice),
            expect: s.expect,
        }
    }

    /// Closed-loop runs: a warm-up of each scenario, then every scenario beside its nginx
    /// counterpart, `reps` times.
    async fn throughput(
        &self,
        report: &mut Report,
        scenarios: &[Scenario],
        servers: &Servers<'_>,
        slice: usize,
    ) -> Result<()> {
        eprintln!("warming up");
        let reps = self.args.reps;
        for s in scenarios {
            let warm = Duration::from_secs(1);
            wrk::run(&self.script, &self.load(servers.gate.addr, s.tg_path, s, reps, slice, warm))?;
            wrk::run(&self.script, &self.load(servers.reference_addr, s.ng_path, s, reps, slice, warm))?;
        }
        for rep in 0..reps {
            for s in scenarios {
                for tokengate in order(rep) {
                    let (server, target) = servers.pick(tokengate);
                    let path = if tokengate { s.tg_path } else { s.ng_path };
                    let misses_before = if tokengate { Some(self.cache_misses(servers.gate).await?) } else { None };
                    let load = self.load(target, path, s, rep, slice, self.args.duration);
                    let label = format!("{} {} rep {}", s.name, server_name(tokengate), rep + 1);
                    let (figures, cpu) = self.measured(&label, server, async { wrk::run(&self.script, &load) }).await?;
                    let misses = match misses_before {
                        Some(before) => {
                            Some((self.cache_misses(servers.gate).await? - before) / figures.requests as f64)
                        }
                        None => None,
                    };
                    eprintln!("  {label}: {:.0} req/s, p99 {} us", figures.rate(), figures.p99_us);
                    let run = Run {
                        rate: figures.rate(),
                        p50_us: figures.p50_us as f64,
                        p99_us: figures.p99_us as f64,
                        cpu,
                        rss: server.rss(),
                        misses,
                    };
                    report.add(s.name, tokengate, run);
                }
            }
        }
        Ok(())
    }

    /// Open-loop runs at `--rate`: tokengate with a cached token beside nginx `proxy_pass`.
    async fn open_loop(&self, report: &mut Report, servers: &Servers<'_>, token: &str) -> Result<()> {
        eprintln!("open loop at {} req/s", self.args.rate);
        for rep in 0..self.args.reps {
            for tokengate in order(rep) {
                let (server, target) = servers.pick(tokengate);
                let (path, token) = if tokengate { ("/api/x", Some(token)) } else { ("/public/x", None) };
                let label = format!("open loop {} rep {}", server_name(tokengate), rep + 1);
                let run = openloop::run(target, path, token, self.args.rate, self.args.duration);
                let (latency, cpu) = self.measured(&label, server, run).await?;
                eprintln!("  {label}: p50 {:.0} us, p99 {:.0} us", latency.p50_us, latency.p99_us);
                let run = Run {
                    rate: latency.sent as f64 / self.args.duration.as_secs_f64(),
                    p50_us: latency.p50_us,
                    p99_us: latency.p99_us,
                    cpu,
                    rss: server.rss(),
                    misses: None,
                };
                report.add_open_loop(tokengate, run);
            }
        }
        Ok(())
    }

    fn start_tokengate(&self, name: &str) -> Result<Gate> {
        let addr = free_addr()?;
        let admin = free_addr()?;
        let keys = self.dir.path().join("admin-keys");
        std::fs::write(&keys, format!("{OPERATOR_KEY}\n"))?;
        let config = self.dir.path().join(format!("tokengate-{name}.yaml"));
        // The per-address failed-authentication limit is off: the invalid and revoked scenarios
        // send one client's failures at full speed to measure the refusal path itself (nginx's
        // `map` counterpart has no such limit), and every probe comes from 127.0.0.1.
        std::fs::write(
            &config,
            format!(
                "listen: {addr}\n\
                 upstream: http://{upstream}\n\
                 admin:\n  listen: {admin}\n  keys_file: {keys}\n\
                 store:\n  redis:\n    url: {redis}\n\
                 routes:\n  - path: /public\n    public: true\n\
                 cache:\n  ttl: 1h\n  max_staleness: 1h\n  max_entries: 2000000\n\
                 proxy:\n  failed_auth:\n    burst: 0\n\
                 log:\n  level: warn\n",
                upstream = self.upstream,
                keys = keys.display(),
                redis = self.redis_url,
            ),
        )?;
        let log = self.dir.path().join(format!("tokengate-{name}.log"));
        let binary = Path::new(env!("CARGO_BIN_EXE_tokengate"));
        let mut proc =
            Proc::spawn("tokengate", SERVER_CORE, binary, &["serve", "--config", &config.display().to_string()], &log)?;
        proc.wait_listening(addr, &log)?;
        proc.wait_listening(admin, &log)?;
        Ok(Gate { proc, addr, admin })
    }

    /// Runs `f`, refusing its figures if anything else used the CPU meanwhile; returns them with
    /// the server's CPU use (share of one core).
    async fn measured<T>(&self, label: &str, server: &Proc, f: impl Future<Output = Result<T>>) -> Result<(T, f64)> {
        let contention = Contention::start();
        let before = server.cpu_ticks();
        let started = Instant::now();
        let out = f.await?;
        let cpu = self.cpu_share(server.cpu_ticks() - before, started.elapsed());
        if let Some(why) = contention.verdict(self.ticks) {
            bail!("refusing to report: during {label}, {why}");
        }
        Ok((out, cpu))
    }

    fn cpu_share(&self, ticks: u64, wall: Duration) -> f64 {
        ticks as f64 / self.ticks / wall.as_secs_f64()
    }

    async fn request(&self, method: Method, url: String, bearer: &str) -> Result<(StatusCode, Bytes)> {
        let req = Request::builder()
            .method(method)
            .uri(url)
            .header("authorization", format!("Bearer {bearer}"))
            .body(Full::new(Bytes::new()))?;
        let resp = self.http.request(req).await?;
        let status = resp.status();
        Ok((status, resp.into_body().collect().await?.to_bytes()))
    }

    /// Token lookups that missed tokengate's cache so far.
    async fn cache_misses(&self, gate: &Gate) -> Result<f64> {
        let (_, body) = self.request(Method::GET, format!("http://{}/metrics", gate.admin), "-").await?;
        let text = String::from_utf8_lossy(&body);
        text.lines()
            .find_map(|l| l.strip_prefix("tokengate_cache_lookups_total{result=\"miss\"} "))
            .and_then(|v| v.trim().parse().ok())
            .context("no cache miss counter in /metrics")
    }

    /// Sends every token of the file once (128 at a time) so that all are cached.
    async fn fill_cache(&self, gate: &Gate, tokens_file: &Path) -> Result<()> {
        let tokens = std::fs::read_to_string(tokens_file)?;
        let url = format!("http://{}/api/x", gate.addr);
        let mut results = futures_util::stream::iter(tokens.lines())
            .map(|t| self.request(Method::GET, url.clone(), t))
            .buffer_unordered(128);
        while let Some(r) = results.next().await {
            let (status, _) = r?;
            if status != StatusCode::OK {
                bail!("filling the cache: {status}");
            }
        }
        Ok(())
    }

    /// Revokes one token through `a`'s admin port while `b` is probed every millisecond; returns
    /// the time from sending the revocation to `b`'s first refusal.
    async fn propagation(&self, a: &Gate, b: &Gate, id: &str, secret: &str) -> Result<Duration> {
        let probe_url = format!("http://{}/api/x", b.addr);
        let (status, _) = self.request(Method::GET, probe_url.clone(), secret).await?;
        if status != StatusCode::OK {
            bail!("token {id} refused by the second instance before its revocation: {status}");
        }
        let started = Instant::now();
        let revoke = self.request(Method::POST, format!("http://{}/v1/tokens/{id}/revoke", a.admin), OPERATOR_KEY);
        let probe = async {
            let mut every = tokio::time::interval(Duration::from_millis(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let (status, _) = self.request(Method::GET, probe_url.clone(), secret).await?;
                match status {
                    StatusCode::OK if started.elapsed() < Duration::from_secs(10) => continue,
                    StatusCode::UNAUTHORIZED => return Ok::<_, anyhow::Error>(started.elapsed()),
                    other => bail!("probing the second instance: {other} after {:?}", started.elapsed()),
                }
            }
        };
        let ((status, body), delay) = tokio::try_join!(revoke, probe)?;
        if status != StatusCode::OK {
            bail!("revoking {id}: {status} {}", String::from_utf8_lossy(&body));
        }
        Ok(delay)
    }
}
