//! `tokengate principal ...` against a running admin port: set, the list table (paged), show,
//! delete with a typed-id confirmation, and one-line errors with a non-zero exit.

mod support;

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use support::admin::{Admin, OPERATOR_KEY};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn tokengate(a: &Admin, credential: (&str, &str), args: &[&str], stdin: &str) -> Run {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .arg("principal")
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
async fn set_list_show_delete_and_errors() {
    let a = Admin::start("").await;
    let run = tokengate(
        &a,
        OP,
        &["set", "alice", "--name", "Alice Smith", "--org", "acme", "--role", "viewer", "--role", "developer"],
        "",
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "Saved alice (Alice Smith), roles: viewer, developer.");
    for id in ["bob", "carol"] {
        assert_eq!(tokengate(&a, OP, &["set", id, "--name", id], "").await.code, 0);
    }
    let p = a.gate.store.get_principal("alice").await.unwrap().unwrap();
    assert_eq!((p.org.as_deref(), p.roles.clone()), (Some("acme"), vec!["viewer".to_string(), "developer".into()]));

    let run = tokengate(&a, OP, &["list"], "").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("ID") && lines[0].contains("ROLES") && lines[0].contains("STATUS"), "{}", run.stdout);
    assert!(lines[1].starts_with("alice") && lines[1].contains("viewer,developer") && lines[1].contains("active"));
    assert_eq!(lines.len(), 4);
    // Paged by the server, cut by --limit, and saying so.
    let run = tokengate(&a, OP, &["list", "--limit", "2"], "").await;
    assert_eq!(run.stdout.lines().count(), 4, "{}", run.stdout);
    assert!(run.stdout.contains("more principals exist"));
    let run = tokengate(&a, OP, &["list", "--json"], "").await;
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);

    let run = tokengate(&a, OP, &["show", "alice"], "").await;
    assert!(run.stdout.contains("Name    Alice Smith") && run.stdout.contains("Org     acme"), "{}", run.stdout);

    // Delete: the id must be typed.
    let run = tokengate(&a, OP, &["delete", "bob"], "bobby\n").await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("did not match"));
    assert!(a.gate.store.get_principal("bob").await.unwrap().is_some());
    let run = tokengate(&a, OP, &["delete", "bob"], "bob\n").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(a.gate.store.get_principal("bob").await.unwrap().is_none());
    assert_eq!(tokengate(&a, OP, &["delete", "carol", "--yes"], "").await.code, 0);

    // Errors: one line, exit 1.
    for (args, needle) in [
        (vec!["show", "nobody"], "404"),
        (vec!["set", "a b", "--name", "x"], "400"),
        (vec!["set", "dave", "--name", "x", "--role", "wizard"], "unknown role"),
        (vec!["delete", "nobody", "--yes"], "404"),
    ] {
        let run = tokengate(&a, OP, &args, "").await;
        assert_eq!(run.code, 1, "{args:?}");
        assert!(run.stderr.starts_with("error: ") && run.stderr.contains(needle), "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    }
    let run = tokengate(&a, ("TOKENGATE_ADMIN_KEY", "wrong-key-0123456789"), &["list"], "").await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("401"), "{}", run.stderr);
}
