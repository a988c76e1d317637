//! Named operator keys on a running gate, through real sockets: the audit log names the key;
//! `admin.keys_file` is re-read while running (a key added, a key removed, the file swapped by
//! rename as Kubernetes does, with the same size and modification time), an expiry refuses the key
//! from its instant on, an invalid edit keeps the last good keys (and is counted), and
//! `GET /v1/keys` lists names, never keys, to operators only.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use http::Method;
use serde_json::{Value, json};

use support::gate::{Gate, Reply, bearer, embedded_config, get, send};
use support::upstream::Upstream;

const KEY_A: &str = "aaaaaaaa-first-key-0123456789";
const KEY_B: &str = "bbbbbbbb-second-key-012345678";
const KEY_C: &str = "cccccccc-third-key-0123456789";
/// How long a change may take to be in force: the 2 s poll plus slack.
const RELOAD: Duration = Duration::from_secs(4);

struct Fixture {
    dir: tempfile::TempDir,
    _upstream: Upstream,
    gate: Gate,
    keys: PathBuf,
}

impl Fixture {
    /// A gate whose `admin.keys_file` is `keys` in a temporary directory, holding `content`.
    async fn start(content: &str) -> Self {
        Self::start_extra(content, "").await
    }

    /// [`Fixture::start`] with more config (`extra`, YAML).
    async fn start_extra(content: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        std::fs::write(&keys, content).unwrap();
        Self::start_with(dir, keys, extra).await
    }

    async fn start_with(dir: tempfile::TempDir, keys: PathBuf, extra: &str) -> Self {
        capture_logs();
        let upstream = Upstream::start().await;
        let yaml =
            embedded_config(&upstream.url(), dir.path(), &format!("admin:\n  keys_file: {}\n{extra}", keys.display()));
        let gate = Gate::start(&yaml).await;
        Self { dir, _upstream: upstream, gate, keys }
    }

    async fn call(&self, method: Method, path: &str, key: &str, body: Option<Value>) -> Reply {
        let auth = bearer(key);
        let mut headers = vec![("authorization", auth.as_str())];
        let body = match body {
            Some(v) => {
                headers.push(("content-type", "application/json"));
                bytes::Bytes::from(v.to_string())
            }
            None => bytes::Bytes::new(),
        };
        send(method, &self.gate.admin_url(path), &headers, body).await
    }

    async fn status(&self, key: &str) -> u16 {
        self.call(Method::GET, "/v1/session", key, None).await.status.as_u16()
    }

    /// Writes the keys file in place (truncate and write, as an editor or `echo >` does).
    fn write(&self, content: &str) {
        std::fs::write(&self.keys, content).unwrap();
    }

    /// Polls until `key` gets `status`; returns how long that took. Fails after [`RELOAD`].
    async fn until(&self, key: &str, status: u16) -> Duration {
        let start = Instant::now();
        loop {
            if self.status(key).await == status {
                return start.elapsed();
            }
            assert!(start.elapsed() < RELOAD, "{key:.8}... still does not get {status} after {RELOAD:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn metric(&self, name: &str) -> i64 {
        let text = String::from_utf8(get(&self.gate.admin_url("/metrics"), &[]).await.body.to_vec()).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{name} not in /metrics"))
            .trim()
            .parse()
            .unwrap()
    }

    async fn until_metric(&self, name: &str, value: i64) {
        let start = Instant::now();
        while self.metric(name).await != value {
            assert!(start.elapsed() < RELOAD, "{name} did not reach {value}: {}", self.metric(name).await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Every log line of this test binary's gates (all tests share one subscriber).
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing_subscriber::fmt()
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .init();
    });
}

fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

/// No key of these tests appears in any log line so far.
fn assert_logs_hold_no_key() {
    let logs = logs();
    for key in [KEY_A, KEY_B, KEY_C] {
        assert!(!logs.contains(&key[..12]), "a key in the logs:\n{logs}");
    }
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_key_is_in_the_audit_log_and_keys_rotate_without_a_restart() {
    let f = Fixture::start(&format!("# operators\nci-deploy {KEY_A}\n")).await;
    let session = f.call(Method::GET, "/v1/session", KEY_A, None).await.json();
    assert_eq!(
        (session["caller"]["kind"].as_str(), session["caller"]["key"].as_str()),
        (Some("operator"), Some("ci-deploy"))
    );
    let r = f
        .call(Method::PUT, "/v1/principals/alice", KEY_A, Some(json!({"display_name": "Alice", "roles": ["viewer"]})))
        .await;
    assert_eq!(r.status, 200);
    let r = f
        .call(Method::POST, "/v1/tokens", KEY_A, Some(json!({"name": "t", "expires_in_days": 30, "owner": "alice"})))
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["created_by"], "key:ci-deploy");
    let audit = f.call(Method::GET, "/v1/audit?limit=1", KEY_A, None).await.json();
    assert_eq!(audit["events"][0]["actor"], "key:ci-deploy");
    assert_eq!(f.metric("tokengate_admin_keys").await, 1);

    // Rotation, step 1: a new line; the new key works within one poll.
    assert_eq!(f.status(KEY_B).await, 401);
    f.write(&format!("# operators\nci-deploy {KEY_A}\nci-deploy-2 {KEY_B}\n"));
    let added = f.until(KEY_B, 200).await;
    assert_eq!(f.status(KEY_A).await, 200, "the old key still works meanwhile");
    let list = f.call(Method::GET, "/v1/keys", KEY_B, None).await;
    assert_eq!(list.status, 200);
    assert_eq!(
        list.json(),
        json!({"keys": [
            {"name": "ci-deploy", "expires_at": null, "source": "file"},
            {"name": "ci-deploy-2", "expires_at": null, "source": "file"},
        ]})
    );
    let body = String::from_utf8_lossy(&list.body);
    assert!(!body.contains(KEY_A) && !body.contains(KEY_B) && !body.contains("0123456"), "no key material: {body}");
    assert_eq!(f.metric("tokengate_admin_keys").await, 2);

    // Step 2: the old line goes; the old key is refused within one poll.
    f.write(&format!("ci-deploy-2 {KEY_B}\n"));
    let removed = f.until(KEY_A, 401).await;
    assert_eq!(f.status(KEY_B).await, 200);
    let r = f
        .call(Method::POST, "/v1/tokens", KEY_B, Some(json!({"name": "u", "expires_in_days": 30, "owner": "alice"})))
        .await;
    assert_eq!(r.json()["created_by"], "key:ci-deploy-2");
    assert_eq!(f.metric("tokengate_admin_keys_reload_errors_total").await, 0);
    eprintln!("reload delay: added key in force after {added:?}, removed key refused after {removed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_key_is_refused_from_its_expiry_on() {
    let expiry = SystemTime::now() + Duration::from_secs(2);
    let past = SystemTime::now() - Duration::from_secs(60);
    let f = Fixture::start(&format!("soon {KEY_A} {}\nops {KEY_B}\nlate {KEY_C} {}\n", rfc3339(expiry), rfc3339(past)))
        .await;
    assert_eq!(f.status(KEY_A).await, 200, "before its expiry");
    assert_eq!(f.status(KEY_C).await, 401, "a key that expired before the start");
    let listed = f.call(Method::GET, "/v1/keys", KEY_B, None).await.json();
    assert_eq!(listed["keys"][0]["expires_at"], rfc3339(expiry));
    assert_eq!(listed["keys"][1]["expires_at"], Value::Null);
    assert_eq!(f.metric("tokengate_admin_keys").await, 2, "the expired key does not count");
    loop {
        let now = SystemTime::now();
        let status = f.status(KEY_A).await;
        if status == 401 {
            let late = SystemTime::now().duration_since(expiry).unwrap_or_default();
            assert!(late < Duration::from_millis(500), "refused {late:?} after the expiry");
            break;
        }
        assert!(now < expiry, "still accepted after its expiry");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(f.status(KEY_B).await, 200);
    f.until_metric("tokengate_admin_keys", 1).await;
    // The file has not changed: nothing was re-read, and the key stays refused.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(f.status(KEY_A).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_edit_keeps_the_last_good_keys() {
    let good = format!("ops {KEY_A}\n");
    let f = Fixture::start(&good).await;
    let future = rfc3339(SystemTime::now() + Duration::from_secs(3600));
    // Each bad file also adds KEY_B on a valid line: none of a bad file is used.
    let bad = [
        format!("ops {KEY_A}\nops {KEY_B}\n"),                      // duplicate name
        format!("ops {KEY_A}\nnew {KEY_B}\nshort 0123456789\n"),    // short key
        format!("ops {KEY_A}\nnew {KEY_B} 2027-13-45T00:00:00Z\n"), // bad date
        format!("ops {KEY_A}\nnew {KEY_B} tomorrow\n"),             // not a date
        format!("ops {KEY_A}\nnew {KEY_B} {future} extra\n"),       // too many fields
        format!("ops {KEY_A}\nnew {KEY_B}\nagain {KEY_A}\n"),       // a key twice
        format!("ops {KEY_A}\nn/ew {KEY_B}\n"),                     // a bad name
        format!("ops {KEY_A}\n{} {KEY_B}\n", "n".repeat(65)),       // a name too long
        format!("ops {KEY_A}\nnew {KEY_B}\n\u{0}\u{202e}\n"),       // a control character line
        String::from_utf8_lossy(&[b'o', b'p', b's', b' ', 0xff, 0xfe]).into_owned(), // short, mangled
    ];
    for (i, content) in bad.iter().enumerate() {
        f.write(content);
        f.until_metric("tokengate_admin_keys_reload_errors_total", i as i64 + 1).await;
        assert_eq!(f.status(KEY_A).await, 200, "bad file {i}: the last good keys stay");
        assert_eq!(f.status(KEY_B).await, 401, "bad file {i}: nothing of it is used");
    }
    // Each refusal was logged naming the file and the line, and no key was.
    let warned = logs();
    let file = f.keys.display().to_string();
    assert!(
        warned.lines().any(|l| l.contains("WARN")
            && l.contains("admin.keys_file cannot be used")
            && l.contains(&file)
            && l.contains("line=2")
            && l.contains("repeats the name of line 1")),
        "{warned}"
    );
    assert_logs_hold_no_key();
    // Invalid bytes (not UTF-8) are refused the same way.
    std::fs::write(&f.keys, [b"ops ".as_slice(), KEY_A.as_bytes(), b"\nnew \xff\xfe0123456789abcdef\n"].concat())
        .unwrap();
    f.until_metric("tokengate_admin_keys_reload_errors_total", bad.len() as i64 + 1).await;
    assert_eq!(f.status(KEY_A).await, 200);
    // A missing file too (deleted, not swapped).
    std::fs::remove_file(&f.keys).unwrap();
    f.until_metric("tokengate_admin_keys_reload_errors_total", bad.len() as i64 + 2).await;
    assert_eq!(f.status(KEY_A).await, 200);
    // A bad file is counted once, however often it is read.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(f.metric("tokengate_admin_keys_reload_errors_total").await, bad.len() as i64 + 2);
    // A good file is in force again.
    f.write(&format!("ops {KEY_A}\nnew {KEY_B}\n"));
    f.until(KEY_B, 200).await;
    assert_eq!(f.metric("tokengate_admin_keys_reload_errors_total").await, bad.len() as i64 + 2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        logs()
            .lines()
            .any(|l| l.contains("admin.keys_file changed") && l.contains(&file) && l.contains("added=[\"new\"]")),
        "the change is logged by name"
    );
    assert_logs_hold_no_key();
}

/// A Kubernetes secret volume: `keys -> ..data/keys`, `..data -> ..<timestamp>/`; an update writes
/// a new timestamped directory and renames a new `..data` link over the old one.
fn k8s_volume(dir: &Path, version: &str, content: &str) {
    let data = dir.join(format!("..{version}"));
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("keys"), content).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_swapped_by_rename_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    k8s_volume(dir.path(), "2026_11_26_v1", &format!("ops {KEY_A}\n"));
    let keys = dir.path().join("keys");
    std::os::unix::fs::symlink("..data/keys", &keys).unwrap();
    let f = Fixture::start_with(dir, keys, "").await;
    assert_eq!(f.status(KEY_A).await, 200);

    // The symlink swap: same length and the same modification time, other content.
    let before = std::fs::metadata(&f.keys).unwrap().modified().unwrap();
    k8s_volume(f.dir.path(), "2026_11_26_v2", &format!("ops {KEY_B}\n"));
    std::fs::File::options().write(true).open(&f.keys).unwrap().set_modified(before).unwrap();
    assert_eq!(std::fs::metadata(&f.keys).unwrap().len(), format!("ops {KEY_A}\n").len() as u64);
    let swapped = f.until(KEY_B, 200).await;
    assert_eq!(f.status(KEY_A).await, 401);

    // A plain file renamed over the path (how many tools write atomically).
    let plain = f.dir.path().join("plain-keys");
    std::fs::write(&plain, format!("ops {KEY_C}\n")).unwrap();
    let staged = f.dir.path().join("plain-keys.new");
    std::fs::write(&staged, format!("ops {KEY_A}\n")).unwrap();
    std::fs::remove_file(&f.keys).unwrap();
    std::os::unix::fs::symlink(&plain, &f.keys).unwrap();
    f.until(KEY_C, 200).await;
    std::fs::rename(&staged, &plain).unwrap();
    let renamed = f.until(KEY_A, 200).await;
    assert_eq!((f.status(KEY_B).await, f.status(KEY_C).await), (401, 401));
    eprintln!("reload delay: symlink swap in force after {swapped:?}, rename after {renamed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_operators_list_the_keys() {
    let f = Fixture::start(&format!("ops {KEY_A}\n{KEY_B}\n")).await;
    let listed = f.call(Method::GET, "/v1/keys", KEY_A, None).await.json();
    assert_eq!(listed["keys"][1]["name"], "key-2", "a bare key is named after its line");
    let r = f
        .call(
            Method::PUT,
            "/v1/principals/alice",
            KEY_A,
            Some(json!({"display_name": "Alice", "org": "acme", "roles": ["admin"]})),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = f
        .call(
            Method::POST,
            "/v1/tokens",
            KEY_B,
            Some(json!({"name": "t", "expires_in_days": 30, "owner": "alice", "roles": ["admin"]})),
        )
        .await;
    assert_eq!(r.json()["created_by"], "key:key-2");
    let personal = r.json()["token"].as_str().unwrap().to_string();
    let r = f.call(Method::GET, "/v1/keys", &personal, None).await;
    assert_eq!(r.status, 403, "a personal token, even an org admin's");
    assert!(!String::from_utf8_lossy(&r.body).contains("ops"));
    assert_eq!(send(Method::GET, &f.gate.admin_url("/v1/keys"), &[], bytes::Bytes::new()).await.status, 401);
    assert_eq!(f.call(Method::POST, "/v1/keys", KEY_A, None).await.status, 405);

    // Near misses of a key, a key's name, and the line itself are not keys.
    for wrong in [&KEY_A[..KEY_A.len() - 1], &format!("{KEY_A}x"), "ops", &format!("ops {KEY_A}"), "key-2"] {
        assert_eq!(f.status(wrong).await, 401, "{wrong}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_signed_in_as_operators_list_the_keys_and_auditors_do_not() {
    let identity = "identity:\n  groups:\n    platform: {roles: [viewer], admin: operator}\n    security: {roles: [viewer], admin: auditor}\n  trusted_headers:\n    peers: [127.0.0.1]\n";
    let f = Fixture::start_extra(&format!("ops {KEY_A} 2030-01-01T00:00:00Z\n"), identity).await;
    let url = f.gate.admin_url("/v1/keys");
    let as_person = |group: &'static str| {
        let url = url.clone();
        async move {
            send(Method::GET, &url, &[("x-forwarded-user", "pat"), ("x-forwarded-groups", group)], bytes::Bytes::new())
                .await
        }
    };
    let r = as_person("platform").await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(
        r.json(),
        json!({"keys": [{"name": "ops", "expires_at": "2030-01-01T00:00:00.000Z", "source": "file"}]})
    );
    let r = as_person("security").await;
    assert_eq!(r.status, 403, "an auditor reads tokens and audit events, not the keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_equal_to_the_scim_token_is_refused_on_reload_too() {
    const SCIM: &str = "scim-token-0123456789abcdef0123456789";
    let scim_dir = tempfile::tempdir().unwrap();
    let scim_file = scim_dir.path().join("scim-token");
    std::fs::write(&scim_file, SCIM).unwrap();
    let f = Fixture::start_extra(&format!("ops {KEY_A}\n"), &format!("scim:\n  token_file: {}\n", scim_file.display()))
        .await;
    f.write(&format!("ops {KEY_A}\ndirectory {SCIM}\n"));
    f.until_metric("tokengate_admin_keys_reload_errors_total", 1).await;
    assert_eq!(f.status(SCIM).await, 401, "the SCIM token never opens /v1");
    assert_eq!(f.status(KEY_A).await, 200);
    assert!(logs().contains("this key is the SCIM token"));
    assert_logs_hold_no_key();
    assert!(!logs().contains(&SCIM[..16]));
}
