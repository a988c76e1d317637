//! The operator keys while tokengate runs: those of `TOKENGATE_ADMIN_KEYS` (read once) and those
//! of `admin.keys_file`, re-read whenever its content changes, so keys are added, rotated and
//! expired without a restart.
//!
//! The file is read every [`POLL_INTERVAL`] and compared by the SHA-256 of its content, not by
//! its modification time: Kubernetes updates a mounted secret by swapping a symlink, which keeps
//! the old file's times. A change is used once two reads [`SETTLE`] apart agree, so a file caught
//! half-written is not. A file that becomes unreadable or invalid changes nothing: the last
//! good keys stay, a warning names the line, and `tokengate_admin_keys_reload_errors_total`
//! counts it (once per content). An expiry needs no re-read: [`AdminKeys::find`] refuses an
//! expired key on every request. The polling task stops when the last handle is dropped.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::config::{
    AdminConfig, AdminKey, AdminKeys, KeySource, Secret, clash_with_env, key_lines, parse_keys_file, read_keys_bytes,
};
use crate::metrics::AdminKeyMetrics;

/// How often `admin.keys_file` is read for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// How long a changed file must stay the same before it is used.
const SETTLE: Duration = Duration::from_millis(100);

/// A cheap-to-clone handle to the current operator keys.
#[derive(Clone)]
pub struct OperatorKeys {
    inner: Arc<Inner>,
}

struct Inner {
    current: RwLock<Arc<AdminKeys>>,
    /// The environment's keys, which never change.
    env: Vec<AdminKey>,
    file: Option<PathBuf>,
    /// A credential no admin key may equal (the SCIM token), as the config check at start.
    forbidden: Option<Secret>,
    /// The digest of what the last read found (content, or the error), so each change is
    /// handled (and each invalid content reported) once.
    seen: Mutex<Option<Vec<u8>>>,
    metrics: AdminKeyMetrics,
    _stop: DropGuard,
}

impl std::fmt::Debug for OperatorKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OperatorKeys({} keys)", self.current().len())
    }
}

impl OperatorKeys {
    /// Starts with the keys the config was validated with, and (when `admin.keys_file` is set)
    /// polls the file every [`POLL_INTERVAL`]. Needs a tokio runtime.
    /// A file that puts `forbidden` (the SCIM token) among the keys is refused, as at start.
    pub fn start(config: &AdminConfig, forbidden: Option<Secret>, metrics: AdminKeyMetrics) -> Self {
        Self::start_every(config, forbidden, metrics, POLL_INTERVAL)
    }

    /// [`OperatorKeys::start`], polling every `interval`.
    pub fn start_every(
        config: &AdminConfig,
        forbidden: Option<Secret>,
        metrics: AdminKeyMetrics,
        interval: Duration,
    ) -> Self {
        let stop = CancellationToken::new();
        let env = config.keys.iter().filter(|k| k.source == KeySource::Env).cloned().collect();
        let inner = Arc::new(Inner {
            current: RwLock::new(Arc::new(config.keys.clone())),
            env,
            file: config.keys_file.clone(),
            forbidden,
            seen: Mutex::new(None),
            metrics,
            _stop: stop.clone().drop_guard(),
        });
        inner.count();
        if inner.file.is_some() {
            tokio::spawn(poll(Arc::downgrade(&inner), interval, stop));
        }
        Self { inner }
    }

    /// The keys in force now.
    pub fn current(&self) -> Arc<AdminKeys> {
        self.inner.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads the file now (what the polling task does every interval).
    pub async fn check(&self) {
        self.inner.check().await;
    }
}

/// The file's bytes (or why they cannot be read) and their digest.
async fn read_file(file: &std::path::Path) -> (std::io::Result<Vec<u8>>, Vec<u8>) {
    let path = file.to_path_buf();
    let read = tokio::task::spawn_blocking(move || read_keys_bytes(&path))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    let digest = match &read {
        Ok(bytes) => Sha256::digest(bytes).to_vec(),
        Err(e) => format!("unreadable: {}", e.kind()).into_bytes(),
    };
    (read, digest)
}

async fn poll(inner: Weak<Inner>, interval: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        inner.check().await;
    }
}

impl Inner {
    /// Sets the gauge to the keys that work now.
    fn count(&self) {
        let now = SystemTime::now();
        let current = self.current.read().unwrap_or_else(|e| e.into_inner()).clone();
        self.metrics.keys.set(current.iter().filter(|k| !k.expired(now)).count() as i64);
    }

    async fn check(&self) {
        if let Some(file) = &self.file {
            self.check_file(file).await;
        }
        self.count();
    }

    async fn check_file(&self, file: &std::path::Path) {
        let (read, digest) = read_file(file).await;
        if self.seen.lock().unwrap_or_else(|e| e.into_inner()).as_deref() == Some(digest.as_slice()) {
            return;
        }
        // Changed: read again a moment later, and go on only if it is the same, so a file caught
        // half-written (edited in place rather than renamed) is never taken for the new keys.
        tokio::time::sleep(SETTLE).await;
        let (read, again) = match read {
            Ok(_) => read_file(file).await,
            Err(_) => (read, digest.clone()),
        };
        if again != digest {
            return;
        }
        let first = self.seen.lock().unwrap_or_else(|e| e.into_inner()).replace(digest).is_none();
        let file_name = file.display().to_string();
        let text = match read.map(String::from_utf8) {
            Ok(Ok(text)) => text,
            Ok(Err(_)) => return self.refuse(&file_name, None, "the file is not UTF-8 text"),
            Err(e) => return self.refuse(&file_name, None, &format!("cannot read it: {e}")),
        };
        let from_file = match parse_keys_file(&text) {
            Ok(keys) => keys,
            Err(e) => return self.refuse(&file_name, Some(e.line), &e.problem),
        };
        let mut keys = self.env.clone();
        keys.extend(from_file);
        if let Err(e) = clash_with_env(&keys, self.env.len(), &text) {
            return self.refuse(&file_name, Some(e.line), &e.problem);
        }
        let keys = AdminKeys::new(keys);
        if let Some(forbidden) = &self.forbidden
            && let Some(key) = keys.iter().position(|k| k.source == KeySource::File && k.is(forbidden.expose()))
        {
            let line = key_lines(&text).get(key - self.env.len()).copied();
            return self.refuse(&file_name, line, "this key is the SCIM token; an admin key must differ from it");
        }
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if !first {
            let names = |set: &AdminKeys| set.iter().map(|k| k.name.clone()).collect::<std::collections::BTreeSet<_>>();
            let (before, after) = (names(&current), names(&keys));
            tracing::info!(
                file = %file_name,
                keys = keys.len(),
                added = ?after.difference(&before).collect::<Vec<_>>(),
                removed = ?before.difference(&after).collect::<Vec<_>>(),
                "admin.keys_file changed; its keys are in force"
            );
        }
        *current = Arc::new(keys);
    }

    /// A read that changes nothing: the last good keys stay.
    fn refuse(&self, file: &str, line: Option<usize>, problem: &str) {
        self.metrics.reload_errors.inc();
        tracing::warn!(
            file,
            line,
            problem,
            "admin.keys_file cannot be used; the last good operator keys stay in force"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn config(file: &std::path::Path) -> AdminConfig {
        let keys =
            AdminKeys::new(vec![AdminKey::new("ops", Secret::new("key-0123456789abcdef"), None, KeySource::File)]);
        AdminConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            keys,
            keys_file: Some(file.to_path_buf()),
            max_body_bytes: 16_384,
            max_connections: 8,
            max_concurrent_calls: 4,
        }
    }

    #[tokio::test]
    async fn the_poll_stops_when_the_last_handle_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        std::fs::write(&file, "ops key-0123456789abcdef\n").unwrap();
        let metrics = AdminKeyMetrics::new(&prometheus::Registry::new());
        let runtime = tokio::runtime::Handle::current().metrics();
        let before = runtime.num_alive_tasks();
        let keys = OperatorKeys::start_every(&config(&file), None, metrics.clone(), Duration::from_millis(10));
        let clone = keys.clone();
        assert_eq!(runtime.num_alive_tasks(), before + 1);
        std::fs::write(&file, "ops key-0123456789abcdef\nci key-0123456789abcdeg\n").unwrap();
        let start = std::time::Instant::now();
        while keys.current().len() != 2 {
            assert!(start.elapsed() < Duration::from_secs(2));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(metrics.keys.get(), 2);
        drop(keys);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(runtime.num_alive_tasks(), before + 1, "a clone keeps it polling");
        drop(clone);
        let start = std::time::Instant::now();
        while runtime.num_alive_tasks() != before {
            assert!(start.elapsed() < Duration::from_secs(2), "the polling task did not stop");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn an_oversized_file_is_refused_and_the_keys_stay() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        std::fs::write(&file, "ops key-0123456789abcdef\n").unwrap();
        let metrics = AdminKeyMetrics::new(&prometheus::Registry::new());
        let keys = OperatorKeys::start_every(&config(&file), None, metrics.clone(), Duration::from_secs(3600));
        keys.check().await;
        let big = format!("ops key-0123456789abcdef\n{}", "# padding\n".repeat(110_000));
        std::fs::write(&file, big).unwrap();
        keys.check().await;
        assert_eq!(metrics.reload_errors.get(), 1);
        assert!(keys.current().find("key-0123456789abcdef", SystemTime::now()).is_some());
        keys.check().await;
        assert_eq!(metrics.reload_errors.get(), 1, "counted once");
    }

    #[tokio::test]
    async fn a_file_caught_half_written_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        std::fs::write(&file, "ops key-0123456789abcdef\n").unwrap();
        let metrics = AdminKeyMetrics::new(&prometheus::Registry::new());
        let keys = OperatorKeys::start_every(&config(&file), None, metrics.clone(), Duration::from_secs(3600));
        keys.check().await;
        // An in-place edit caught between its truncation and its last write.
        std::fs::write(&file, "ops key-0123456789abcdef\nci key-0123").unwrap();
        let writer = {
            let file = file.clone();
            tokio::spawn(async move {
                tokio::time::sleep(SETTLE / 3).await;
                std::fs::write(&file, "ops key-0123456789abcdef\nci key-0123456789abcdeg\n").unwrap();
            })
        };
        keys.check().await;
        writer.await.unwrap();
        assert_eq!((keys.current().len(), metrics.reload_errors.get()), (1, 0), "neither used nor reported");
        keys.check().await;
        assert_eq!(keys.current().len(), 2, "the finished file is used");
        assert_eq!(metrics.reload_errors.get(), 0);
    }
}
