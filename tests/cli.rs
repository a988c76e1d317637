//! The `tokengate` binary: `check-config` exit codes and messages, and `serve` stopping cleanly
//! on SIGTERM and Ctrl-C.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn tokengate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tokengate"));
    c.env_remove("RUST_LOG");
    c
}

#[test]
fn check_config_accepts_the_shipped_config_and_prints_a_summary() {
    let out = tokengate().args(["check-config", "--config", "config/tokengate.yaml"]).output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("OK") && stdout.contains("store: embedded"), "{stdout}");
}

/// Each example in config/examples/ passes `check-config`, and the summary says which Redis
/// topology it connects to (and never a secret).
#[test]
fn check_config_accepts_every_example() {
    for (file, expected) in [
        ("config/examples/redis.yaml", "redis (redis://127.0.0.1:6379/0, no TLS"),
        ("config/examples/redis-tls-acl.yaml", "TLS, user tokengate"),
        ("config/examples/redis-sentinel.yaml", "sentinel master \"mymaster\" via sentinel-0.sentinel:26379"),
        ("config/examples/redis-cluster.yaml", "cluster via redis-cluster-0.redis-cluster:6379"),
    ] {
        let out = tokengate()
            .args(["check-config", "--config", file])
            .env("TOKENGATE_REDIS_PASSWORD", "example-password")
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains(expected) && !stdout.contains("example-password"), "{file}: {stdout}");
    }
}

#[test]
fn check_config_names_the_field_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, "upstream: http://127.0.0.1:3000\nadmin:\n  listen: nowhere\n").unwrap();
    let out = tokengate().args(["check-config", "--config"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("`admin.listen`: invalid socket address \"nowhere\""), "{stderr}");

    let out = tokengate().args(["check-config", "--config", "/nonexistent.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("cannot read config file"));
}

#[test]
fn check_config_applies_environment_overrides() {
    let out = tokengate()
        .args(["check-config", "--config", "config/minimal.yaml"])
        .env("TOKENGATE_ROLES", "[viewer, ops]")
        .env("TOKENGATE_TOKENS__DEFAULT_ROLES", "[ops, root]")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("`tokens.default_roles[1]` (set by TOKENGATE_TOKENS__DEFAULT_ROLES): unknown role"),
        "{stderr}"
    );
}

/// Starts `serve` with `worker_threads` (1: the single-threaded runtime).
fn start_serve(dir: &std::path::Path, worker_threads: usize) -> Child {
    let config = dir.join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "upstream: http://127.0.0.1:3000\nlisten: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nstore:\n  embedded:\n    path: {}\nruntime:\n  worker_threads: {worker_threads}\n",
            dir.join("db/t.redb").display()
        ),
    )
    .unwrap();
    tokengate().args(["serve", "--config"]).arg(&config).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

fn stop_with(signal: &str, mut child: Child) -> String {
    // Wait until it says it has started, then signal it.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut logs = String::new();
    while !logs.contains("tokengate started") {
        assert!(stderr.read_line(&mut logs).unwrap() > 0, "serve exited before starting: {logs}");
    }
    let status = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "serve did not stop within 10 s of {signal}");
        std::thread::sleep(Duration::from_millis(20));
    }
    stderr.read_to_string(&mut logs).unwrap();
    logs
}

#[test]
fn serve_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let logs = stop_with("-TERM", start_serve(dir.path(), 2));
    assert!(logs.contains("received SIGTERM") && logs.contains("tokengate stopped"), "{logs}");
}

#[test]
fn serve_stops_cleanly_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let logs = stop_with("-INT", start_serve(dir.path(), 1));
    assert!(logs.contains("received Ctrl-C"), "{logs}");
}

#[test]
fn healthcheck_reports_a_running_and_a_missing_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_serve(dir.path(), 1);
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut logs = String::new();
    let admin = loop {
        assert!(stderr.read_line(&mut logs).unwrap() > 0, "serve exited: {logs}");
        if let Some(rest) = logs.lines().last().and_then(|l| l.split("admin=").nth(1)) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let ok = tokengate().args(["healthcheck", "--url", &format!("http://{admin}/readyz")]).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let _ = child.kill();
    let _ = child.wait();
    let down = tokengate()
        .args(["healthcheck", "--url", "http://127.0.0.1:1/healthz", "--timeout", "500ms"])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).starts_with("unhealthy:"));
}
