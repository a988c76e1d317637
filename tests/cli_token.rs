//! `tokengate token ...` against a running admin port: create, the list table, revoke with a
//! typed-name confirmation, delete, rotate, and one-line errors with a non-zero exit.

mod support;

use std::process::Stdio;

use http::Method;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use support::admin::{Admin, OPERATOR_KEY};
use support::gate::{bearer, get};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the CLI with `credential`, feeding `stdin` to it.
async fn tokengate(a: &Admin, credential: (&str, &str), args: &[&str], stdin: &str) -> Run {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .arg("token")
        .args(args)
        .env("TOKENGATE_ADMIN_URL", a.gate.admin_url(""))
        .env_remove("TOKENGATE_ADMIN_KEY")
        .env_remove("TOKENGATE_TOKEN")
        .env(credential.0, credential.1)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

const OP: (&str, &str) = ("TOKENGATE_ADMIN_KEY", OPERATOR_KEY);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_revoke_delete_and_errors() {
    let a = Admin::start("").await;
    a.principal("alice", Some("acme"), &["viewer", "developer"]).await;

    // create: the secret once, clearly marked, with the ready header line.
    let run = tokengate(
        &a,
        OP,
        &[
            "create",
            "--name",
            "ci-deploy",
            "--expires",
            "90",
            "--owner",
            "alice",
            "--role",
            "developer",
            "--scope",
            "env:prod",
        ],
        "",
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("This is the only time the token is shown"), "{}", run.stdout);
    let secret =
        run.stdout.lines().map(str::trim).find(|l| l.starts_with("tgp_") && !l.ends_with("...")).unwrap().to_string();
    assert!(run.stdout.contains(&format!("Authorization: Bearer {secret}")));
    assert_eq!(get(&a.gate.url("/x"), &[("authorization", &bearer(&secret))]).await.status, 200);
    let id = secret[4..16].to_string();

    let run = tokengate(&a, OP, &["create", "--name", "nightly", "--expires", "30", "--org", "acme"], "").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("Created organization token \"nightly\""));

    // list: an aligned table with masked tokens and "never".
    get(&a.gate.url("/x"), &[("authorization", &bearer(&secret))]).await;
    let run = tokengate(&a, OP, &["list"], "").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(lines[0].starts_with("NAME") && lines[0].contains("TOKEN") && lines[0].contains("LAST USED"));
    assert!(lines[1].starts_with("nightly") && lines[2].starts_with("ci-deploy"), "newest first");
    let column = |h: &str| lines[0].find(h).unwrap();
    for (line, prefix) in lines[1..].iter().zip(["tgo_", "tgp_"]) {
        assert!(line[column("TOKEN")..].starts_with(prefix), "aligned token column: {line:?}");
        assert!(line[column("STATUS")..].starts_with("active"), "aligned status column: {line:?}");
    }
    assert!(lines[2].contains(&format!("tgp_{}...", &id[..8])));
    assert!(lines[1].contains("never"));
    assert!(!run.stdout.contains(&secret), "list never shows secrets");

    let run = tokengate(&a, OP, &["list", "--name", "NIGHT", "--json"], "").await;
    let listed: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // revoke: a wrong name aborts and changes nothing; the right name revokes.
    let run = tokengate(&a, OP, &["revoke", &id], "wrong-name\n").await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("did not match"), "{}", run.stderr);
    assert_eq!(a.op(Method::GET, &format!("/v1/tokens/{id}"), None).await.json()["status"], "active");
    let run = tokengate(&a, OP, &["revoke", &id], "ci-deploy\n").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("Revoked \"ci-deploy\""));
    assert_eq!(get(&a.gate.url("/x"), &[("authorization", &bearer(&secret))]).await.status, 401);

    // delete with --yes.
    let run = tokengate(&a, OP, &["delete", &id, "--yes"], "").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(a.op(Method::GET, &format!("/v1/tokens/{id}"), None).await.status, 404);

    // Server errors: one clear line, exit 1.
    for (args, expected) in [
        (vec!["show", "AAAAAAAAAAAA"], "error: no such token (HTTP 404)"),
        (
            vec!["create", "--name", "x", "--expires", "7", "--owner", "alice"],
            "error: expires_in_days: must be one of: 30, 60, 90, 180, 365 (HTTP 400)",
        ),
        (vec!["list", "--status", "gone"], "error: status: one of: active, suspended, revoked, expired (HTTP 400)"),
    ] {
        let run = tokengate(&a, OP, &args, "").await;
        assert_eq!((run.code, run.stderr.trim()), (1, expected), "{args:?}");
    }
    let run = tokengate(&a, ("TOKENGATE_ADMIN_KEY", "not-the-key-0123456789"), &["list"], "").await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("HTTP 401"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_use_their_own_token_and_rotate() {
    let a = Admin::start("").await;
    a.principal("alice", None, &["viewer"]).await;
    let mine = a.create(OPERATOR_KEY, json!({"name": "laptop", "expires_in_days": 30, "owner": "alice"})).await;
    let token = mine["token"].as_str().unwrap();
    let me = ("TOKENGATE_TOKEN", token);
    let run = tokengate(&a, me, &["create", "--name", "script", "--expires", "60"], "").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("for alice"));
    let run = tokengate(&a, me, &["show", mine["id"].as_str().unwrap()], "").await;
    assert!(run.stdout.contains("Owner      alice"), "{}", run.stdout);
    let run = tokengate(&a, me, &["rotate", mine["id"].as_str().unwrap(), "--grace", "1h"], "").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("The previous secret keeps working until"));
    let run = tokengate(&a, ("TOKENGATE_ADMIN_URL", "http://127.0.0.1:1"), &["list"], "").await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.starts_with("error: no credential"), "{}", run.stderr);
}

/// A reader that goes away early (`tokengate token list --json | head -1`) ends the command
/// quietly with 141 (128 + SIGPIPE), never with a panic message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_ends_the_command_quietly() {
    let a = Admin::start("").await;
    a.principal("alice", None, &["viewer"]).await;
    for i in 0..3 {
        a.create(OPERATOR_KEY, json!({"name": format!("t{i}"), "expires_in_days": 30, "owner": "alice"})).await;
    }
    for args in [vec!["list", "--json"], vec!["list"], vec!["create", "--name", "piped", "--owner", "alice"]] {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tokengate"))
            .arg("token")
            .args(&args)
            .env("TOKENGATE_ADMIN_URL", a.gate.admin_url(""))
            .env("TOKENGATE_ADMIN_KEY", OPERATOR_KEY)
            .env_remove("TOKENGATE_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader closes its end before the command has written anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: no message, no panic: {stderr}");
    }
}

/// `--rate`, `--burst`, `--quota` and `--allow-network` at creation; `list` and `show` print the
/// limits; a malformed rate is refused by the CLI before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_set_at_creation_and_shown() {
    let a = Admin::start("").await;
    a.principal("alice", None, &["viewer"]).await;
    let args = [
        "create",
        "--name",
        "metered",
        "--owner",
        "alice",
        "--rate",
        "100/1m",
        "--burst",
        "20",
        "--quota",
        "5000",
        "--allow-network",
        "10.0.0.0/8",
        "--json",
    ];
    let run = tokengate(&a, OP, &args, "").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let created: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        created["limits"],
        json!({"rate": {"requests": 100, "window_secs": 60, "burst": 20}, "quota": 5000, "networks": ["10.0.0.0/8"]})
    );
    let id = created["id"].as_str().unwrap().to_string();
    let run = tokengate(&a, OP, &["list"], "").await;
    assert!(run.stdout.lines().next().unwrap().contains("LIMITS"), "{}", run.stdout);
    assert!(run.stdout.contains("100/60s burst 20, quota 5000, from 10.0.0.0/8"), "{}", run.stdout);
    let run = tokengate(&a, OP, &["show", &id], "").await;
    assert!(run.stdout.contains("Limits     100/60s burst 20, quota 5000, from 10.0.0.0/8"), "{}", run.stdout);

    let before = a.snapshot().await;
    for bad in [&["--rate", "100"][..], &["--rate", "fast"], &["--burst", "5"], &["--quota", "-1"]] {
        let mut args = vec!["create", "--name", "bad", "--owner", "alice"];
        args.extend_from_slice(bad);
        let run = tokengate(&a, OP, &args, "").await;
        assert_eq!(run.code, 2, "{bad:?}: {}", run.stderr);
    }
    let run = tokengate(&a, OP, &["create", "--name", "bad", "--owner", "alice", "--allow-network", "10/33"], "").await;
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("limits"), "the API's error names the field: {}", run.stderr);
    assert_eq!(a.snapshot().await, before, "nothing stored");

    // `token limits` replaces them; nothing named is an error, --clear removes them.
    let run = tokengate(&a, OP, &["limits", &id, "--quota", "10"], "").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("are now: quota 10."), "{}", run.stdout);
    let run = tokengate(&a, OP, &["limits", &id], "").await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("--clear"), "{}", run.stderr);
    assert_eq!(a.op(Method::GET, &format!("/v1/tokens/{id}"), None).await.json()["limits"], json!({"quota": 10}));
    let run = tokengate(&a, OP, &["limits", &id, "--clear"], "").await;
    assert!(run.stdout.contains("are now: none."), "{}", run.stdout);
    assert!(a.op(Method::GET, &format!("/v1/tokens/{id}"), None).await.json().get("limits").is_none());
}
