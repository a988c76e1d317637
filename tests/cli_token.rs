//! `tokengate token ...` against a running admin port: create, the list table (with each token's
//! id, and a notice when more exist than shown), revoke with a typed-name confirmation, delete,
//! rotate, creating the owner with the token, and one-line errors with a non-zero exit.

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
    assert!(lines[2][column("ID")..].starts_with(&format!("{id}  ")), "the full id in its own column: {}", lines[2]);
    assert!(lines[0][column("NAME")..].starts_with("NAME") && column("ID") < column("TOKEN"));
    assert!(!run.stderr.contains("--cursor"), "everything shown: no notice: {}", run.stderr);
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
    // The revocation reaches the proxy's cache through an invalidation, a moment later.
    let mut status = http::StatusCode::OK;
    for _ in 0..40 {
        status = get(&a.gate.url("/x"), &[("authorization", &bearer(&secret))]).await.status;
        if status == 401 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, 401);

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

/// `list` shows ids the other commands accept and says when more tokens exist than it shows
/// (with the cursor that continues, or `--all`); `show` names the last use's client address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_ids_and_says_when_more_exist() {
    let a = Admin::start("last_used:\n  flush_interval: 50ms\n").await;
    a.principal("alice", None, &["viewer"]).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let t = a.create(OPERATOR_KEY, json!({"name": format!("t{i}"), "expires_in_days": 30, "owner": "alice"})).await;
        ids.push((t["id"].as_str().unwrap().to_string(), t["token"].as_str().unwrap().to_string()));
    }
    let id_column = |stdout: &str| -> Vec<String> {
        let lines: Vec<&str> = stdout.lines().collect();
        let at = lines[0].find("ID").unwrap();
        lines[1..].iter().map(|l| l[at..].split_whitespace().next().unwrap().to_string()).collect()
    };

    let run = tokengate(&a, OP, &["list", "--limit", "2"], "").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(id_column(&run.stdout), vec![ids[2].0.clone(), ids[1].0.clone()], "{}", run.stdout);
    let notice = run.stderr.trim();
    assert!(notice.starts_with("More tokens than the 2 shown: add --cursor "), "{notice}");
    assert!(notice.ends_with("or --all for every one."), "{notice}");
    let cursor = notice.split_whitespace().skip_while(|w| *w != "--cursor").nth(1).unwrap();

    let run = tokengate(&a, OP, &["list", "--limit", "2", "--cursor", cursor], "").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(id_column(&run.stdout), vec![ids[0].0.clone()], "the next page continues where the first stopped");
    assert_eq!(run.stderr, "", "the last page: no notice");

    let run = tokengate(&a, OP, &["list", "--all"], "").await;
    assert_eq!(id_column(&run.stdout).len(), 3);
    assert_eq!(run.stderr, "");
    let run = tokengate(&a, OP, &["list", "--limit", "1", "--json"], "").await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&run.stdout).unwrap().as_array().unwrap().len(), 1);
    assert!(run.stderr.contains("--cursor"), "the notice stays off the JSON output: {}", run.stderr);

    // The listed id is what `show` takes; it names the last use's client address.
    get(&a.gate.url("/x"), &[("authorization", &bearer(&ids[0].1))]).await;
    let path = format!("/v1/tokens/{}", ids[0].0);
    for _ in 0..100 {
        if !a.op(Method::GET, &path, None).await.json()["last_used_at"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let run = tokengate(&a, OP, &["show", &ids[0].0], "").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("Last used  just now from 127.0.0.1"), "{}", run.stdout);
}

/// `create --create-owner` makes the owner first (operators only); without it a missing owner
/// is a clear error that names the flag; an existing owner is left unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_can_create_the_owner() {
    let a = Admin::start("").await;
    a.principal("alice", Some("acme"), &["viewer"]).await;

    let run = tokengate(&a, OP, &["create", "--name", "ci", "--owner", "carol"], "").await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("no principal \"carol\""), "{}", run.stderr);
    assert!(run.stderr.contains("add --create-owner"), "{}", run.stderr);
    assert_eq!(a.op(Method::GET, "/v1/principals/carol", None).await.status, 404);

    let args = [
        "create",
        "--name",
        "ci",
        "--owner",
        "carol",
        "--create-owner",
        "--owner-name",
        "Carol C",
        "--owner-org",
        "acme",
        "--owner-role",
        "developer",
        "--role",
        "developer",
        "--json",
    ];
    let run = tokengate(&a, OP, &args, "").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("Created the owner carol (Carol C)."), "{}", run.stderr);
    let created: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!((&created["owner"], &created["roles"]), (&json!("carol"), &json!(["developer"])));
    let carol = a.op(Method::GET, "/v1/principals/carol", None).await.json();
    assert_eq!(
        (&carol["display_name"], &carol["org"], &carol["roles"]),
        (&json!("Carol C"), &json!("acme"), &json!(["developer"]))
    );
    let secret = created["token"].as_str().unwrap();
    assert_eq!(get(&a.gate.url("/x"), &[("authorization", &bearer(secret))]).await.status, 200);

    // Asked again for an owner who exists: left as they are.
    let run =
        tokengate(&a, OP, &["create", "--name", "ci2", "--owner", "carol", "--create-owner", "--owner-name", "X"], "")
            .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("The owner carol already exists; left unchanged."), "{}", run.stderr);
    assert_eq!(a.op(Method::GET, "/v1/principals/carol", None).await.json()["display_name"], "Carol C");

    // Without an operator key: refused before anything is sent.
    let mine = a.create(OPERATOR_KEY, json!({"name": "laptop", "expires_in_days": 30, "owner": "alice"})).await;
    let me = ("TOKENGATE_TOKEN", mine["token"].as_str().unwrap());
    let before = a.snapshot().await;
    let run = tokengate(&a, me, &["create", "--name", "x", "--owner", "dave", "--create-owner"], "").await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("--create-owner needs an operator key"), "{}", run.stderr);
    assert_eq!(a.op(Method::GET, "/v1/principals/dave", None).await.status, 404);
    assert_eq!(a.snapshot().await, before, "nothing stored");

    // Flags that make no sense together are refused by the command line itself.
    for bad in [
        &["create", "--name", "x", "--create-owner"][..],
        &["create", "--name", "x", "--org", "acme", "--create-owner"],
        &["create", "--name", "x", "--owner", "erin", "--owner-name", "Erin"],
    ] {
        let run = tokengate(&a, OP, bad, "").await;
        assert_eq!(run.code, 2, "{bad:?}: {}", run.stderr);
    }
}
