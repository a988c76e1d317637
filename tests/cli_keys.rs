//! `tokengate keys list` against a running admin port: the table (NAME, EXPIRES, SOURCE) and
//! `--json`, never a key; one-line errors with a non-zero exit for a wrong key, a personal token's
//! key and no key at all.

mod support;

use std::time::{Duration, Instant};

use http::Method;
use serde_json::json;

use support::admin::{Admin, OPERATOR_KEY};

const ROBOT_KEY: &str = "robot-key-0123456789abcdef";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn keys(a: &Admin, key: Option<&str>, args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tokengate"));
    command
        .arg("keys")
        .args(args)
        .env("TOKENGATE_ADMIN_URL", a.gate.admin_url(""))
        .env_remove("TOKENGATE_ADMIN_KEY")
        .env_remove("TOKENGATE_TOKEN");
    if let Some(key) = key {
        command.env("TOKENGATE_ADMIN_KEY", key);
    }
    let out = command.output().await.unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_list_shows_names_expiry_and_source() {
    let a = Admin::start("").await;
    // A second key, with an expiry, added to the running gate's file.
    let file = a._dir.path().join("admin-keys");
    let mut content = std::fs::read_to_string(&file).unwrap();
    content.push_str(&format!("robot {ROBOT_KEY} 2027-01-31T00:00:00Z\n"));
    std::fs::write(&file, content).unwrap();
    let start = Instant::now();
    while a.call(Method::GET, "/v1/session", ROBOT_KEY, None).await.status != 200 {
        assert!(start.elapsed() < Duration::from_secs(4), "the new key is not in force");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let run = keys(&a, Some(OPERATOR_KEY), &["list"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<Vec<&str>> = run.stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        lines,
        [
            vec!["NAME", "EXPIRES", "SOURCE"],
            vec!["ops", "never", "file"],
            vec!["robot", "2027-01-31T00:00:00.000Z", "file"]
        ]
    );
    assert!(!run.stdout.contains(OPERATOR_KEY) && !run.stdout.contains(ROBOT_KEY));

    let run = keys(&a, Some(ROBOT_KEY), &["list", "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let listed: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        listed,
        json!({"keys": [
            {"name": "ops", "expires_at": null, "source": "file"},
            {"name": "robot", "expires_at": "2027-01-31T00:00:00.000Z", "source": "file"},
        ]})
    );
    assert!(!run.stdout.contains(OPERATOR_KEY) && !run.stdout.contains(ROBOT_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_list_errors_are_one_line() {
    let a = Admin::start("").await;
    let run = keys(&a, Some("not-the-key-0123456789"), &["list"]).await;
    assert_eq!((run.code, run.stdout.as_str()), (1, ""));
    assert!(run.stderr.starts_with("error: ") && run.stderr.contains("(HTTP 401)"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1);

    a.principal("alice", Some("acme"), &["viewer", "admin"]).await;
    let created = a.create(OPERATOR_KEY, json!({"name": "t", "expires_in_days": 30, "owner": "alice"})).await;
    let run = keys(&a, Some(created["token"].as_str().unwrap()), &["list"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("only operators can list the operator keys (HTTP 403)"), "{}", run.stderr);

    let run = keys(&a, None, &["list"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("TOKENGATE_ADMIN_KEY"), "{}", run.stderr);
}
