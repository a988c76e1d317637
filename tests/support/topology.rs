//! Redis as platform teams run it, for the tests: TLS with an ACL user ([`TlsRedis`]), Sentinel
//! ([`SentinelSet`]: a master, a replica and three `redis-sentinel` processes) and Cluster
//! ([`RedisCluster`]: three masters, three replicas), all real processes on free loopback
//! ports. Certificates are generated here with rcgen.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use tokengate::config::{RedisConfig, RedisNode, RedisTls, RedisTopology, Secret, SentinelAuth};

use super::{RedisServer, free_port};

/// The ACL user tokengate connects as in the TLS setup, limited to its own keys and channel.
pub const ACL_USER: &str = "tokengate";

/// A CA, a server certificate for the given names, and a client certificate, written to a
/// temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

impl Pki {
    pub fn generate() -> Self {
        Self::for_names(&["localhost", "127.0.0.1"])
    }

    pub fn for_names(server_names: &[&str]) -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "tokengate test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let names: Vec<String> = server_names.iter().map(|n| n.to_string()).collect();
        let mut server_params = CertificateParams::new(names).unwrap();
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server_params.distinguished_name.push(DnType::CommonName, "localhost");
        let server = server_params.signed_by(&server_key, &issuer).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(vec!["tokengate-client".into()]).unwrap();
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        client_params.distinguished_name.push(DnType::CommonName, "tokengate-client");
        let client = client_params.signed_by(&client_key, &issuer).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let pki =
            Self { dir, ca_pem: ca.pem(), client_cert_pem: client.pem(), client_key_pem: client_key.serialize_pem() };
        std::fs::write(pki.path("ca.pem"), &pki.ca_pem).unwrap();
        std::fs::write(pki.path("server.pem"), server.pem()).unwrap();
        std::fs::write(pki.path("server.key"), server_key.serialize_pem()).unwrap();
        std::fs::write(pki.path("client.pem"), &pki.client_cert_pem).unwrap();
        std::fs::write(pki.path("client.key"), &pki.client_key_pem).unwrap();
        pki
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The client side: this CA, and the client certificate when `mutual`.
    pub fn client_tls(&self, mutual: bool) -> RedisTls {
        RedisTls {
            ca_pem: Some(self.ca_pem.clone().into_bytes()),
            client: mutual
                .then(|| (self.client_cert_pem.clone().into_bytes(), Secret::new(self.client_key_pem.clone()))),
        }
    }
}

/// `redis-server` listening with TLS only to clients that present a certificate from the test
/// CA (`tls-auth-clients yes`), with an ACL user limited to the `{<prefix>}` keys and channel.
/// A plain port stays open for the test's own inspection (`server.command`).
pub struct TlsRedis {
    pub server: RedisServer,
    pub tls_port: u16,
    pub pki: Pki,
    pub password: String,
}

impl TlsRedis {
    pub fn start(prefix: &str) -> Self {
        // Only the name: connecting by address must fail the name check.
        let pki = Pki::for_names(&["localhost"]);
        let tls_port = free_port();
        let password = "acl-password-for-tests".to_string();
        let p = |name: &str| pki.path(name).display().to_string();
        let server = RedisServer::start_with(vec![
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            p("server.pem"),
            "--tls-key-file".into(),
            p("server.key"),
            "--tls-ca-cert-file".into(),
            p("ca.pem"),
            "--tls-auth-clients".into(),
            "yes".into(),
            "--user".into(),
            ACL_USER.into(),
            "on".into(),
            format!(">{password}"),
            format!("~{{{prefix}}}:*"),
            format!("&{{{prefix}}}:*"),
            "+@all".into(),
            "-@dangerous".into(),
        ]);
        Self { server, tls_port, pki, password }
    }

    /// The `store` section for a gate: the same connection as [`Self::config`], from files.
    pub fn store_yaml(&self, prefix: &str) -> String {
        let password_file = self.pki.path("password");
        std::fs::write(&password_file, format!("{}\n", self.password)).unwrap();
        format!(
            "store:\n  redis:\n    url: rediss://localhost:{}/\n    username: {ACL_USER}\n    password_file: {}\n    \
             tls:\n      ca_file: {}\n      cert_file: {}\n      key_file: {}\n{}",
            self.tls_port,
            password_file.display(),
            self.pki.path("ca.pem").display(),
            self.pki.path("client.pem").display(),
            self.pki.path("client.key").display(),
            common_yaml(prefix),
        )
    }

    /// Connects as [`ACL_USER`] over mutual TLS to `localhost` (the name in the certificate).
    pub fn config(&self, prefix: &str) -> RedisConfig {
        RedisConfig {
            username: Some(ACL_USER.into()),
            password: Some(Secret::new(self.password.clone())),
            tls: Some(self.pki.client_tls(true)),
            connect_timeout: Duration::from_millis(500),
            ..RedisConfig::standalone(format!("rediss://localhost:{}/", self.tls_port), prefix)
        }
    }
}

/// A master, one replica and three sentinels watching them as `mymaster` (quorum 2, a server
/// is considered down after 1 s).
pub struct SentinelSet {
    pub master: RedisServer,
    pub replica: RedisServer,
    sentinels: Vec<Sentinel>,
}

pub const MASTER_NAME: &str = "mymaster";

struct Sentinel {
    port: u16,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SentinelSet {
    pub fn start() -> Self {
        let master = RedisServer::start_with(no_sync_delay());
        let mut replica_args = no_sync_delay();
        replica_args.extend(["--replicaof".into(), "127.0.0.1".into(), master.port.to_string()]);
        let replica = RedisServer::start_with(replica_args);
        let sentinels = (0..3)
            .map(|_| {
                let dir = tempfile::tempdir().unwrap();
                let port = free_port();
                let conf = dir.path().join("sentinel.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {}\n\
                         sentinel monitor {MASTER_NAME} 127.0.0.1 {} 2\n\
                         sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                         sentinel failover-timeout {MASTER_NAME} 4000\n\
                         sentinel parallel-syncs {MASTER_NAME} 1\n",
                        dir.path().display(),
                        master.port
                    ),
                )
                .unwrap();
                let child = Command::new("redis-sentinel")
                    .arg(&conf)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("redis-sentinel is installed (the test command installs it)");
                Sentinel { port, _dir: dir, child }
            })
            .collect();
        let set = Self { master, replica, sentinels };
        set.wait_until_watched();
        set
    }

    /// Waits until every sentinel knows the replica and the other two sentinels, so a failover
    /// can happen.
    fn wait_until_watched(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = self.sentinels.iter().all(|s| {
                let replicas = command(s.port, &["SENTINEL", "REPLICAS", MASTER_NAME]);
                let others = command(s.port, &["SENTINEL", "SENTINELS", MASTER_NAME]);
                replicas.contains(&self.replica.port.to_string()) && others.starts_with("*2")
            });
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "the sentinels did not discover each other and the replica in 30 s");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn config(&self, prefix: &str) -> RedisConfig {
        let nodes = self.sentinels.iter().map(|s| RedisNode { host: "127.0.0.1".into(), port: s.port }).collect();
        RedisConfig {
            topology: RedisTopology::Sentinel {
                master: MASTER_NAME.into(),
                nodes,
                db: 0,
                auth: SentinelAuth::default(),
            },
            connect_timeout: Duration::from_millis(500),
            ..RedisConfig::standalone("redis://unused/", prefix)
        }
    }

    /// The `store` section for a gate.
    pub fn store_yaml(&self, prefix: &str) -> String {
        let nodes: Vec<String> = self.sentinels.iter().map(|s| format!("127.0.0.1:{}", s.port)).collect();
        format!(
            "store:\n  redis:\n    sentinel:\n      master: {MASTER_NAME}\n      nodes: [{}]\n{}",
            nodes.join(", "),
            common_yaml(prefix)
        )
    }

    /// The port of the server the sentinels currently name as master.
    pub fn master_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let reply = command(s.port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME]);
            reply.lines().nth(4).and_then(|p| p.trim().parse().ok())
        })
    }

    /// Waits until the replica has every write the master acknowledged, then kills the master
    /// and waits until the sentinels promote the replica. Returns how long the promotion took.
    pub fn fail_over(&mut self) -> Duration {
        self.master_lost(|m| m.kill())
    }

    /// Like [`Self::fail_over`], but the master is frozen (SIGSTOP), not killed: its sockets stay
    /// open and nothing answers. [`RedisServer::resume`] thaws it later.
    pub fn freeze_master(&mut self) -> Duration {
        self.master_lost(|m| m.pause())
    }

    fn master_lost(&mut self, lose: impl FnOnce(&mut RedisServer)) -> Duration {
        let acked = command(self.master.port, &["WAIT", "1", "5000"]);
        assert!(acked.starts_with(":1"), "the replica did not catch up: {acked}");
        lose(&mut self.master);
        let killed = Instant::now();
        let deadline = killed + Duration::from_secs(30);
        while self.master_port() != Some(self.replica.port) {
            assert!(Instant::now() < deadline, "no failover within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        killed.elapsed()
    }
}

/// The key prefix and the short timeouts the tests use, under `store.redis`.
fn common_yaml(prefix: &str) -> String {
    format!("    key_prefix: {prefix}\n    connect_timeout: 300ms\n    command_timeout: 500ms\n")
}

/// Full synchronisation starts at once (the default waits 5 s for more replicas).
fn no_sync_delay() -> Vec<String> {
    vec!["--repl-diskless-sync-delay".into(), "0".into()]
}

/// Three masters and three replicas (`redis-cli --cluster create --cluster-replicas 1`), node
/// timeout 1 s.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..6)
            .map(|_| {
                RedisServer::start_with(
                    [
                        "--repl-diskless-sync-delay",
                        "0",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-node-timeout",
                        "1000",
                        "--cluster-port",
                        &free_port().to_string(),
                        "--cluster-config-file",
                        "nodes.conf",
                    ]
                    .map(String::from)
                    .to_vec(),
                )
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli is installed (the test command installs it)");
        assert!(out.status.success(), "cluster create failed: {}", String::from_utf8_lossy(&out.stdout));
        let cluster = Self { nodes };
        cluster.wait_until_ok();
        cluster
    }

    /// Waits until every running node reports `cluster_state:ok`.
    pub fn wait_until_ok(&self) -> Duration {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(30);
        loop {
            let ok = self
                .nodes
                .iter()
                .filter(|n| n.is_running())
                .all(|n| n.command(&["CLUSTER", "INFO"]).contains("cluster_state:ok"));
            if ok {
                return start.elapsed();
            }
            assert!(Instant::now() < deadline, "the cluster did not become ok in 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn config(&self, prefix: &str) -> RedisConfig {
        let nodes = self.nodes.iter().take(3).map(|n| RedisNode { host: "127.0.0.1".into(), port: n.port }).collect();
        RedisConfig {
            topology: RedisTopology::Cluster { nodes },
            connect_timeout: Duration::from_millis(500),
            ..RedisConfig::standalone("redis://unused/", prefix)
        }
    }

    /// The `store` section for a gate (three of the six nodes as seeds).
    pub fn store_yaml(&self, prefix: &str) -> String {
        let nodes: Vec<String> = self.nodes.iter().take(3).map(|n| format!("127.0.0.1:{}", n.port)).collect();
        format!("store:\n  redis:\n    cluster:\n      nodes: [{}]\n{}", nodes.join(", "), common_yaml(prefix))
    }

    /// The index in `nodes` of the master that owns the slot of `{prefix}`.
    pub fn owner_of(&self, prefix: &str) -> usize {
        let any = self.nodes.iter().find(|n| n.is_running()).expect("a running node");
        let slot: u16 = any
            .command(&["CLUSTER", "KEYSLOT", &format!("{{{prefix}}}")])
            .trim_start_matches(':')
            .trim()
            .parse()
            .unwrap();
        self.nodes.iter().position(|n| n.is_running() && owns(n, slot)).expect("an owner of the slot")
    }

    /// Waits until the owner's replica has every acknowledged write, kills the master owning
    /// `{prefix}`'s slot and waits until that replica is promoted and the cluster is ok again.
    /// Returns how long that took.
    pub fn fail_over(&mut self, prefix: &str) -> Duration {
        let owner = self.owner_of(prefix);
        let owner_id = self.nodes[owner].command(&["CLUSTER", "MYID"]);
        let owner_id = owner_id.lines().nth(1).unwrap_or_default().trim().to_string();
        let replica = self
            .nodes
            .iter()
            .position(|n| {
                // A replica's own line names its master's id in the fourth field.
                let nodes = n.command(&["CLUSTER", "NODES"]);
                nodes.lines().any(|l| l.contains("myself") && l.split_whitespace().nth(3) == Some(owner_id.as_str()))
            })
            .expect("the owner has a replica");
        let acked = command(self.nodes[owner].port, &["WAIT", "1", "5000"]);
        assert!(acked.starts_with(":1"), "the replica did not catch up: {acked}");
        self.nodes[owner].kill();
        let killed = Instant::now();
        let deadline = killed + Duration::from_secs(30);
        while !self.nodes[replica].command(&["ROLE"]).contains("master") {
            assert!(Instant::now() < deadline, "the replica was not promoted within 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.wait_until_ok();
        killed.elapsed()
    }
}

/// Whether node `n` serves `slot` (its `CLUSTER NODES` line marked `myself` lists a range
/// holding it).
fn owns(n: &RedisServer, slot: u16) -> bool {
    let nodes = n.command(&["CLUSTER", "NODES"]);
    nodes.lines().filter(|l| l.contains("myself")).any(|line| {
        line.split_whitespace().skip(8).any(|range| {
            let (lo, hi) = range.split_once('-').unwrap_or((range, range));
            matches!((lo.parse::<u16>(), hi.parse::<u16>()), (Ok(lo), Ok(hi)) if (lo..=hi).contains(&slot))
        })
    })
}

/// One raw command to a loopback port; the raw reply (empty when nothing answers).
pub fn command(port: u16, args: &[&str]) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    if s.write_all(req.as_bytes()).is_err() {
        return String::new();
    }
    s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let mut buf = [0u8; 65536];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}
