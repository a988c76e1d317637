//! Runs wrk (closed loop, pinned to the load core) with `wrk.lua` and reads its figures.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// What one wrk run measured.
#[derive(Debug, Clone, Deserialize)]
pub struct Figures {
    pub requests: u64,
    pub duration_us: u64,
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    /// Responses with a status of 400 or above.
    pub status: u64,
    pub timeout: u64,
    pub p50_us: u64,
    pub p99_us: u64,
}

impl Figures {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / (self.duration_us as f64 / 1e6)
    }

    fn socket_errors(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout
    }
}

/// Which tokens a run sends.
#[derive(Clone)]
pub enum Tokens {
    None,
    /// The same token on every request.
    One(String),
    /// The next token of a slice of the tokens file on every request.
    Slice {
        file: PathBuf,
        first: usize,
        count: usize,
        once: bool,
    },
}

/// One load run.
pub struct Load<'a> {
    pub core: usize,
    pub threads: usize,
    pub connections: usize,
    pub duration: Duration,
    pub target: SocketAddr,
    pub path: &'a str,
    pub tokens: Tokens,
    /// The status every response must have: runs where any other came back are errors.
    pub expect: u16,
}

pub fn run(script: &Path, load: &Load) -> Result<Figures> {
    let mut cmd = Command::new("taskset");
    cmd.arg("-c")
        .arg(load.core.to_string())
        .arg("wrk")
        .arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.duration.as_secs().max(1)))
        .arg("--timeout=5s")
        .arg("-s")
        .arg(script)
        .arg(format!("http://{}{}", load.target, load.path))
        .env("TG_PATH", load.path)
        .env("TG_THREADS", load.threads.to_string());
    match &load.tokens {
        Tokens::None => {}
        Tokens::One(t) => {
            cmd.env("TG_TOKEN", t);
        }
        Tokens::Slice { file, first, count, once } => {
            cmd.env("TG_TOKENS_FILE", file)
                .env("TG_FIRST", first.to_string())
                .env("TG_COUNT", count.to_string())
                .env("TG_ONCE", if *once { "1" } else { "0" });
        }
    }
    let out = cmd.output().context("running wrk")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed ({}): {}{}", out.status, stdout, String::from_utf8_lossy(&out.stderr));
    }
    let line = stdout.lines().find(|l| l.starts_with("{\"requests\"")).context("wrk printed no figures")?;
    let f: Figures = serde_json::from_str(line).context("reading wrk's figures")?;
    let refused = if load.expect >= 400 { f.requests - f.status.min(f.requests) } else { f.status };
    if f.requests == 0 || f.socket_errors() > 0 || refused > 0 {
        bail!(
            "{}{}: {} requests, {} socket errors, {} responses other than {}",
            load.target,
            load.path,
            f.requests,
            f.socket_errors(),
            refused,
            load.expect
        );
    }
    Ok(f)
}
