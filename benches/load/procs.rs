//! Child processes pinned to a core, and what `/proc` says about them: CPU time, resident
//! memory, and whether anything outside the benchmark used the CPU during a run.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A process started under `taskset`; killed when dropped.
pub struct Proc {
    pub name: &'static str,
    child: Child,
}

impl Proc {
    /// Starts `program args` pinned to `core`, with stdout discarded and stderr kept in
    /// `log` (shown when the process fails to start).
    pub fn spawn(name: &'static str, core: usize, program: &Path, args: &[&str], log: &Path) -> Result<Self> {
        let stderr = std::fs::File::create(log)?;
        let child = Command::new("taskset")
            .arg("-c")
            .arg(core.to_string())
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        Ok(Self { name, child })
    }

    /// The pid of the program itself (`taskset` execs it, keeping the pid).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process and its children (nginx's workers).
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.pid()];
        pids.extend(snapshot().into_iter().filter(|(_, s)| s.ppid == self.pid()).map(|(p, _)| p));
        pids
    }

    /// CPU time (user + system) of the process and its children, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let all = snapshot();
        self.pids().iter().filter_map(|p| all.get(p)).map(|s| s.ticks).sum()
    }

    /// Resident memory of the process and its children, in bytes.
    pub fn rss(&self) -> u64 {
        self.pids().iter().map(|p| rss(*p)).sum()
    }

    /// Waits until `addr` accepts connections; fails if the process exits first.
    pub fn wait_listening(&mut self, addr: SocketAddr, log: &Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                bail!("{} exited ({status}) before listening on {addr}:\n{log}", self.name);
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("{} did not listen on {addr} within 30 s", self.name)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound, then released for a child to take).
pub fn free_addr() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// One line of `/proc/<pid>/stat`.
#[derive(Clone)]
pub struct Stat {
    pub ppid: u32,
    pub comm: String,
    pub ticks: u64,
}

/// Every visible process, by pid.
pub fn snapshot() -> HashMap<u32, Stat> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if let Some(stat) = std::fs::read_to_string(entry.path().join("stat")).ok().and_then(|s| parse_stat(&s)) {
            out.insert(pid, stat);
        }
    }
    out
}

fn parse_stat(line: &str) -> Option<Stat> {
    // `pid (comm) state ppid ...`: comm may contain spaces and parentheses.
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let comm = line[open + 1..close].to_string();
    let rest: Vec<&str> = line[close + 2..].split(' ').collect();
    // After comm: state(0) ppid(1) ... utime(11) stime(12).
    let ppid = rest.get(1)?.parse().ok()?;
    let ticks = rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
    Some(Stat { ppid, comm, ticks })
}

/// Resident set size of one process, in bytes.
pub fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
pub fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Steal time of the whole machine, in ticks (a hypervisor taking our cores).
fn steal_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .find(|l| l.starts_with("cpu "))
        .and_then(|l| l.split_whitespace().nth(8))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Watches for CPU use by anything that is not part of the benchmark.
pub struct Contention {
    before: HashMap<u32, Stat>,
    steal: u64,
    started: Instant,
}

/// Share of one core that other processes may use during a run before its figures are refused.
pub const MAX_FOREIGN_SHARE: f64 = 0.10;

impl Contention {
    pub fn start() -> Self {
        Self { before: snapshot(), steal: steal_ticks(), started: Instant::now() }
    }

    /// Why the run just finished cannot be trusted, if it cannot: the busiest foreign processes
    /// (not this harness or its descendants; the kernel's softirq threads, which carry our own
    /// loopback traffic, are ours too) or hypervisor steal time.
    pub fn verdict(&self, ticks_per_second: f64) -> Option<String> {
        let after = snapshot();
        let wall = self.started.elapsed().as_secs_f64();
        let ours = descendants(std::process::id(), &after);
        let mut foreign: Vec<(f64, String)> = after
            .iter()
            .filter(|(pid, s)| !ours.contains(pid) && !s.comm.starts_with("ksoftirqd"))
            .filter_map(|(pid, s)| {
                let before = self.before.get(pid).map_or(0, |b| b.ticks);
                let used = s.ticks.saturating_sub(before) as f64 / ticks_per_second / wall;
                (used > 0.0).then(|| (used, format!("{} (pid {pid})", s.comm)))
            })
            .collect();
        foreign.sort_by(|a, b| b.0.total_cmp(&a.0));
        let total: f64 = foreign.iter().map(|f| f.0).sum();
        let steal = steal_ticks().saturating_sub(self.steal) as f64 / ticks_per_second / wall;
        if total > MAX_FOREIGN_SHARE {
            let top: Vec<String> = foreign
                .iter()
                .take(3)
                .filter(|(u, _)| *u >= 0.01)
                .map(|(u, n)| format!("{n} {:.0}% of a core", u * 100.0))
                .collect();
            return Some(format!(
                "other processes used {:.0}% of a core (limit {:.0}%): {}",
                total * 100.0,
                MAX_FOREIGN_SHARE * 100.0,
                top.join(", ")
            ));
        }
        if steal > MAX_FOREIGN_SHARE {
            return Some(format!("the hypervisor stole {:.0}% of a core", steal * 100.0));
        }
        None
    }
}

fn descendants(root: u32, all: &HashMap<u32, Stat>) -> HashSet<u32> {
    let mut ours = HashSet::from([root]);
    loop {
        let before = ours.len();
        for (pid, s) in all {
            if ours.contains(&s.ppid) {
                ours.insert(*pid);
            }
        }
        if ours.len() == before {
            return ours;
        }
    }
}
