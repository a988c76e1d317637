//! Shared test helpers: a real `redis-server` on a free loopback port, a real upstream, an
//! in-process tokengate, a call-counting store wrapper, and token fixtures.
#![allow(dead_code)]

pub mod admin;
pub mod gate;
pub mod topology;
pub mod upstream;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokengate::store::embedded::EmbeddedStore;
use tokengate::store::{IdPage, Invalidation, LastUse, ListQuery, Page, StoreError, TokenStore};
use tokengate::token::TokenId;
use tokengate::token::limits::{Grant, TokenLimits};
use tokengate::token::{Action, AuditEvent, Group, Principal};
use tokio::sync::broadcast;

use tokengate::clock::Timestamp;
use tokengate::config::RedisConfig;
use tokengate::token::digest::Hasher;
use tokengate::token::mint::{Minter, NewToken};
use tokengate::token::{SecretToken, TokenFormat};
use tokengate::token::{Token, TokenKind};

/// A `redis-server` child process on a free loopback port (never 6379), with its data in a
/// temporary directory. Appends every write to its AOF with fsync, so a kill and restart keeps
/// the data. Killed on drop.
pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Extra command-line settings (TLS, ACL users, cluster mode, replication).
    extra: Vec<String>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(Vec::new())
    }

    /// A server with extra `redis-server` arguments (`--name value` pairs).
    pub fn start_with(extra: Vec<String>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut server = Self { port, dir, child: None, extra };
        server.spawn_with(true);
        server
    }

    fn spawn(&mut self) {
        self.spawn_with(false);
    }

    /// Starts the server; on a first start, a port taken meanwhile by another test (the server
    /// exits at once) is replaced by a fresh one, up to a few times.
    fn spawn_with(&mut self, first: bool) {
        for attempt in 0.. {
            let mut child = Command::new("redis-server")
                .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
                .args(["--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "no"])
                .arg("--dir")
                .arg(self.dir.path())
                .args(&self.extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server is installed (the test command installs it)");
            if wait_for_pong(self.port, &mut child) {
                self.child = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(first && attempt < 5, "redis-server on port {} did not answer PING within 10 s", self.port);
            self.port = free_port();
            // A cluster bus port is chosen the same way and may collide the same way.
            if let Some(i) = self.extra.iter().position(|a| a == "--cluster-port") {
                self.extra[i + 1] = free_port().to_string();
            }
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn config(&self, key_prefix: &str) -> RedisConfig {
        RedisConfig { connect_timeout: Duration::from_millis(500), ..RedisConfig::standalone(self.url(), key_prefix) }
    }

    /// Kills the server abruptly (like a crash or a node loss).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("the server is running").id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().expect("kill runs");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Starts it again on the same port with the same data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Sends one raw command and returns the raw reply (for inspecting keys in tests).
    pub fn command(&self, args: &[&str]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 65536];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until the server answers PING; false when it exits first (its port was taken) or
/// stays silent for 10 s.
fn wait_for_pong(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
            if s.write_all(b"PING\r\n").is_ok() {
                let mut buf = [0u8; 16];
                if let Ok(n) = s.read(&mut buf)
                    && buf[..n].starts_with(b"+PONG")
                {
                    return true;
                }
            }
        }
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The default token format and an unpeppered hasher.
pub fn minter() -> Minter {
    Minter::new(TokenFormat::default(), Hasher::new(None))
}

/// A new-token request for tests.
pub fn new_token(kind: TokenKind, name: &str, owner: &str) -> NewToken {
    NewToken {
        kind,
        name: name.to_string(),
        owner: owner.to_string(),
        created_by: owner.to_string(),
        lifetime: Duration::from_secs(30 * 86_400),
        roles: vec!["viewer".to_string()],
        scopes: vec![],
        limits: Default::default(),
    }
}

/// Mints (without storing) a personal token created at `created_ms`.
pub fn token_at(name: &str, owner: &str, created_ms: u64) -> (SecretToken, Token) {
    minter().mint(&new_token(TokenKind::Personal, name, owner), Timestamp(created_ms))
}

/// Wraps a real store: counts every call that reaches it, and can make it unreachable
/// (calls then fail as a network outage would, without reaching it).
pub struct Counting {
    inner: EmbeddedStore,
    calls: AtomicUsize,
    down: AtomicBool,
    /// While set, `get` reads the record, then waits for a permit before answering.
    held: std::sync::Mutex<Option<std::sync::Arc<tokio::sync::Semaphore>>>,
    gets_waiting: AtomicUsize,
    /// Upper bound of a random pause, in microseconds, between reading a record and answering.
    get_jitter_us: std::sync::atomic::AtomicU64,
}

impl Counting {
    pub fn new(inner: EmbeddedStore) -> Self {
        Self {
            inner,
            calls: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            held: std::sync::Mutex::new(None),
            gets_waiting: AtomicUsize::new(0),
            get_jitter_us: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// From now on, each `get` pauses for a random time below `max` after reading its record:
    /// fetches in flight while the record changes.
    pub fn set_get_jitter(&self, max: Duration) {
        self.get_jitter_us.store(max.as_micros() as u64, Ordering::SeqCst);
    }

    /// From now on, each `get` reads its record and then waits (with what it read) until
    /// [`Counting::release_gets`]: a fetch frozen between the store's answer and the cache.
    pub fn hold_gets(&self) {
        *self.held.lock().unwrap() = Some(std::sync::Arc::new(tokio::sync::Semaphore::new(0)));
    }

    /// Lets every held and future `get` through.
    pub fn release_gets(&self) {
        if let Some(s) = self.held.lock().unwrap().take() {
            s.close();
        }
    }

    /// How many `get`s are waiting in [`Counting::hold_gets`].
    pub fn gets_waiting(&self) -> usize {
        self.gets_waiting.load(Ordering::SeqCst)
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn hit(&self) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("store marked down by the test".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl TokenStore for Counting {
    fn backend(&self) -> &'static str {
        "counting"
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.hit()?;
        self.inner.ping().await
    }
    async fn create(&self, token: &Token, actor: &str) -> Result<(), StoreError> {
        self.hit()?;
        self.inner.create(token, actor).await
    }
    async fn get(&self, id: &TokenId) -> Result<Option<Token>, StoreError> {
        self.hit()?;
        let record = self.inner.get(id).await;
        let jitter = self.get_jitter_us.load(Ordering::SeqCst);
        if jitter > 0 {
            use std::hash::{BuildHasher, RandomState};
            let pause = RandomState::new().hash_one(self.calls()) % jitter;
            tokio::time::sleep(Duration::from_micros(pause)).await;
        }
        let held = self.held.lock().unwrap().clone();
        if let Some(gate) = held {
            self.gets_waiting.fetch_add(1, Ordering::SeqCst);
            let _ = gate.acquire().await;
            self.gets_waiting.fetch_sub(1, Ordering::SeqCst);
        }
        record
    }
    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        self.hit()?;
        self.inner.list(query).await
    }
    async fn transition(&self, id: &TokenId, action: Action, actor: &str) -> Result<Token, StoreError> {
        self.hit()?;
        self.inner.transition(id, action, actor).await
    }
    async fn rotate(
        &self,
        id: &TokenId,
        expected: &tokengate::token::digest::TokenDigest,
        digest: &tokengate::token::digest::TokenDigest,
        grace_until: Option<Timestamp>,
        actor: &str,
    ) -> Result<Token, StoreError> {
        self.hit()?;
        self.inner.rotate(id, expected, digest, grace_until, actor).await
    }
    async fn delete(&self, id: &TokenId, actor: &str) -> Result<Token, StoreError> {
        self.hit()?;
        self.inner.delete(id, actor).await
    }
    async fn record_last_used(&self, uses: &[LastUse]) -> Result<usize, StoreError> {
        self.hit()?;
        self.inner.record_last_used(uses).await
    }
    async fn put_principal(&self, p: &Principal) -> Result<(), StoreError> {
        self.hit()?;
        self.inner.put_principal(p).await
    }
    async fn get_principal(&self, id: &str) -> Result<Option<Principal>, StoreError> {
        self.hit()?;
        self.inner.get_principal(id).await
    }
    async fn delete_principal(&self, id: &str, actor: &str) -> Result<bool, StoreError> {
        self.hit()?;
        self.inner.delete_principal(id, actor).await
    }
    async fn audit(&self, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        self.hit()?;
        self.inner.audit(limit).await
    }
    async fn list_principals(&self, after: Option<&str>, limit: usize) -> Result<IdPage<Principal>, StoreError> {
        self.hit()?;
        self.inner.list_principals(after, limit).await
    }
    async fn put_group(&self, g: &Group) -> Result<(), StoreError> {
        self.hit()?;
        self.inner.put_group(g).await
    }
    async fn get_group(&self, id: &str) -> Result<Option<Group>, StoreError> {
        self.hit()?;
        self.inner.get_group(id).await
    }
    async fn delete_group(&self, id: &str) -> Result<bool, StoreError> {
        self.hit()?;
        self.inner.delete_group(id).await
    }
    async fn list_groups(&self, after: Option<&str>, limit: usize) -> Result<IdPage<Group>, StoreError> {
        self.hit()?;
        self.inner.list_groups(after, limit).await
    }
    async fn set_limits(&self, id: &TokenId, limits: &TokenLimits, actor: &str) -> Result<Token, StoreError> {
        self.hit()?;
        self.inner.set_limits(id, limits, actor).await
    }
    async fn take_permits(&self, id: &TokenId, limits: &TokenLimits, n: u32) -> Result<Grant, StoreError> {
        self.hit()?;
        self.inner.take_permits(id, limits, n).await
    }
    fn invalidations(&self) -> broadcast::Receiver<Invalidation> {
        self.inner.invalidations()
    }
    fn invalidations_connected(&self) -> bool {
        self.inner.invalidations_connected()
    }
}
