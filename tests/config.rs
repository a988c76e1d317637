//! Config validation: each kind of bad config is refused with a message naming the field.

use std::collections::BTreeMap;
use std::time::Duration;

use tokengate::config::{
    Config, ConfigError, LogFormat, RedisConfig, RedisNode, RedisProtocol, RedisTopology, StoreConfig,
};

const BASE: &str = "upstream: http://127.0.0.1:3000\n";

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn load(yaml: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(yaml, &BTreeMap::new())
}

/// Asserts that `yaml` is refused for `field`, with `problem` in the message.
fn refused(yaml: &str, field: &str, problem: &str) {
    refused_with_env(yaml, &[], field, problem);
}

fn refused_with_env(yaml: &str, vars: &[(&str, &str)], field: &str, problem: &str) {
    let err = Config::from_yaml(yaml, &env(vars)).expect_err("config must be refused").to_string();
    assert!(err.starts_with(&format!("`{field}`")), "error should name `{field}`: {err}");
    assert!(err.contains(problem), "error should mention {problem:?}: {err}");
}

#[test]
fn the_shipped_configs_are_valid() {
    let examples = std::fs::read_dir("config/examples").unwrap().map(|e| e.unwrap().path().display().to_string());
    let files: Vec<String> =
        ["config/tokengate.yaml".to_string(), "config/minimal.yaml".to_string()].into_iter().chain(examples).collect();
    assert!(files.len() >= 6, "{files:?}");
    for file in &files {
        let c = Config::load(file.as_ref(), &BTreeMap::new()).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(c.upstream.as_str(), "http://127.0.0.1:3000/");
    }
}

#[test]
fn defaults_match_the_documentation() {
    let c = load(BASE).unwrap();
    assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9091");
    assert!(matches!(&c.store, StoreConfig::Embedded(e) if e.path.ends_with("data/tokengate.redb")));
    assert_eq!(c.tokens.expiry_days, vec![30, 60, 90, 180, 365]);
    assert_eq!(c.roles, vec!["viewer", "developer", "admin"]);
    assert_eq!(c.tokens.default_roles, vec!["viewer"]);
    assert!(!c.tokens.allow_restore);
    assert!(c.tokens.pepper.is_none());
    assert_eq!(c.audit.max_events, 10_000);
    assert_eq!(c.shutdown.drain_timeout, Duration::from_secs(30));
    assert_eq!(c.cache.max_entries, 100_000);
    assert_eq!(c.proxy.connections.max_connections, 10_000);
    assert_eq!(c.proxy.connections.max_headers, 100);
    assert_eq!(c.proxy.connections.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.proxy.connections.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.admin.max_connections, 64);
    assert_eq!(c.admin.max_concurrent_calls, 16);
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(c.runtime.worker_threads, cores, "one worker per usable core");
    assert_eq!(c.log.format, LogFormat::Text);
}

#[test]
fn worker_threads() {
    assert_eq!(load(&format!("{BASE}runtime:\n  worker_threads: 1\n")).unwrap().runtime.worker_threads, 1);
    let c = Config::from_yaml(BASE, &env(&[("TOKENGATE_RUNTIME__WORKER_THREADS", "3")])).unwrap();
    assert_eq!(c.runtime.worker_threads, 3);
    refused(&format!("{BASE}runtime:\n  worker_threads: 0\n"), "runtime.worker_threads", "between 1 and 1024");
    refused(&format!("{BASE}runtime:\n  worker_threads: 5000\n"), "runtime.worker_threads", "between 1 and 1024");
    refused(&format!("{BASE}runtime:\n  worker_threads: -1\n"), "runtime.worker_threads", "invalid");
    refused(&format!("{BASE}runtime:\n  threads: 2\n"), "runtime.threads", "unknown field");
}

#[test]
fn redis_store_and_environment_overrides() {
    let c = Config::from_yaml(
        "upstream: http://u:1\nstore:\n  redis:\n    url: redis://:hunter2@10.0.0.1:6380/2\n",
        &env(&[("TOKENGATE_STORE__REDIS__COMMAND_TIMEOUT", "250ms"), ("TOKENGATE_LISTEN", "127.0.0.1:18080")]),
    )
    .unwrap();
    let StoreConfig::Redis(r) = &c.store else { panic!("redis expected") };
    assert_eq!(r.command_timeout, Duration::from_millis(250));
    assert_eq!(r.key_prefix, "tokengate");
    assert_eq!(c.listen.to_string(), "127.0.0.1:18080");
    // The password never shows in the summary or in Debug output.
    assert!(!c.summary().contains("hunter2"), "{}", c.summary());
    assert!(!format!("{c:?}").contains("hunter2"));
}

/// A YAML document with `redis` as the `store.redis` section.
fn with_redis(redis: &str) -> String {
    let indented: String = redis.lines().map(|l| format!("    {l}\n")).collect();
    format!("{BASE}store:\n  redis:\n{indented}")
}

fn redis_of(c: &Config) -> &RedisConfig {
    let StoreConfig::Redis(r) = &c.store else { panic!("redis expected") };
    r
}

#[test]
fn redis_topologies_credentials_and_tls() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap().self_signed(&key).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let (ca, crt, pem_key) =
        (write("ca.pem", &cert.pem()), write("c.pem", &cert.pem()), write("k.pem", &key.serialize_pem()));
    let password = write("password", "s3cret-from-file\n");

    // Standalone over TLS, ACL user and password from a file, mutual TLS.
    let c = load(&with_redis(&format!(
        "url: rediss://cache.example.com:6380/0\nusername: tokengate\npassword_file: {password}\ntls:\n  ca_file: {ca}\n  cert_file: {crt}\n  key_file: {pem_key}"
    )))
    .unwrap();
    let r = redis_of(&c);
    assert!(matches!(&r.topology, RedisTopology::Standalone { url } if url == "rediss://cache.example.com:6380/0"));
    assert_eq!(
        (r.username.as_deref(), r.password.as_ref().map(|p| p.expose())),
        (Some("tokengate"), Some("s3cret-from-file"))
    );
    let tls = r.tls.as_ref().expect("TLS on");
    assert!(tls.ca_pem.is_some() && tls.client.is_some());
    assert_eq!(r.protocol, RedisProtocol::Resp3);
    for shown in [c.summary(), format!("{c:?}")] {
        assert!(!shown.contains("s3cret") && !shown.contains("PRIVATE KEY"), "{shown}");
        assert!(shown.contains("mutual TLS") || shown.contains("RedisConfig"), "{shown}");
    }

    // The password from the environment; credentials in the URL move out of it.
    let c = Config::from_yaml(&with_redis("url: redis://alice:p%40ss@10.0.0.1:6380/2"), &env(&[])).unwrap();
    let r = redis_of(&c);
    assert!(matches!(&r.topology, RedisTopology::Standalone { url } if url == "redis://10.0.0.1:6380/2"));
    assert_eq!((r.username.as_deref(), r.password.as_ref().map(|p| p.expose())), (Some("alice"), Some("p@ss")));
    let c = Config::from_yaml(&with_redis("url: redis://10.0.0.1"), &env(&[("TOKENGATE_REDIS_PASSWORD", "from-env")]))
        .unwrap();
    assert_eq!(redis_of(&c).password.as_ref().map(|p| p.expose()), Some("from-env"));

    // Sentinel, structured and as a URL.
    let c = load(&with_redis(
        "sentinel:\n  master: mymaster\n  nodes: [s0:26379, 's1', '[::1]:26380']\n  db: 3\ntls:\n  enabled: true",
    ))
    .unwrap();
    let r = redis_of(&c);
    let RedisTopology::Sentinel { master, nodes, db, .. } = &r.topology else { panic!("sentinel expected") };
    assert_eq!((master.as_str(), *db, r.tls.is_some()), ("mymaster", 3, true));
    let shown: Vec<String> = nodes.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["s0:26379", "s1:26379", "[::1]:26380"]);
    let c = load(&with_redis("url: rediss+sentinel://:pw@s0:1,s1:2/primary/1")).unwrap();
    let r = redis_of(&c);
    let RedisTopology::Sentinel { master, nodes, db, .. } = &r.topology else { panic!("sentinel expected") };
    assert_eq!((master.as_str(), nodes.len(), *db, r.tls.is_some()), ("primary", 2, 1, true));
    assert_eq!(r.password.as_ref().map(|p| p.expose()), Some("pw"));

    // Cluster.
    let c = load(&with_redis("cluster:\n  nodes: [10.0.0.1:7000, 10.0.0.2]")).unwrap();
    let RedisTopology::Cluster { nodes } = &redis_of(&c).topology else { panic!("cluster expected") };
    assert_eq!(nodes[1], RedisNode { host: "10.0.0.2".into(), port: 6379 });

    // And what is refused, naming the field.
    let bad = [
        ("url: redis://h\ncluster:\n  nodes: [h:1]", "store.redis", "only one of"),
        ("sentinel:\n  nodes: [h:1]", "store.redis.sentinel.master", "required"),
        ("sentinel:\n  master: m\n  nodes: []", "store.redis.sentinel.nodes", "at least one"),
        ("sentinel:\n  master: m\n  nodes: [h:1]\n  db: -1", "store.redis.sentinel.db", "zero or more"),
        ("cluster:\n  nodes: ['h:0']", "store.redis.cluster.nodes[0]", "invalid address"),
        ("cluster:\n  nodes: ['h:1:2']", "store.redis.cluster.nodes[0]", "invalid address"),
        ("cluster:\n  nodes: ['h/x:1']", "store.redis.cluster.nodes[0]", "invalid address"),
        ("cluster:\n  nodes: [h:1]\nprotocol: resp2", "store.redis.protocol", "needs resp3"),
        ("url: redis://h\nprotocol: resp4", "store.redis.protocol", "unknown protocol"),
        ("url: redis+sentinel://h:1", "store.redis.url", "no master name"),
        ("url: redis+sentinel://h:1/m/x", "store.redis.url", "invalid database"),
        ("url: redis+sentinel://h:1/m/0/extra", "store.redis.url", "unexpected text"),
        ("url: redis+sentinel://h:99999/m", "store.redis.url[0]", "invalid address"),
        ("url: redis://h\ntls:\n  enabled: true", "store.redis.tls.enabled", "use rediss://"),
        ("url: rediss://h\ntls:\n  enabled: false", "store.redis.tls.enabled", "which is TLS"),
        ("url: redis://h\ntls:\n  ca_file: /x", "store.redis.tls.ca_file", "TLS is off"),
        ("url: rediss://h\ntls:\n  ca_file: /nonexistent/ca.pem", "store.redis.tls.ca_file", "cannot read"),
        ("url: rediss://h\ntls:\n  cert_file: /x", "store.redis.tls.key_file", "required with"),
        ("url: redis://u@h\nusername: v", "store.redis.username", "in one place"),
        ("url: redis://h\nusername: ''", "store.redis.username", "must not be empty"),
        ("url: redis://h\nsentinel_nodes: [x]", "store.redis.sentinel_nodes", "unknown field"),
    ];
    for (yaml, field, problem) in bad {
        refused(&with_redis(yaml), field, problem);
    }
    refused(
        &with_redis(&format!("url: rediss://h\ntls:\n  ca_file: {password}")),
        "store.redis.tls.ca_file",
        "no PEM certificate",
    );
    refused(
        &with_redis(&format!("url: rediss://h\ntls:\n  cert_file: {crt}\n  key_file: {crt}")),
        "store.redis.tls.key_file",
        "no PEM private key",
    );
    refused(
        &with_redis(&format!("url: redis://:x@h\npassword_file: {password}")),
        "store.redis.password_file",
        "in one place",
    );
    refused_with_env(
        &with_redis(&format!("url: redis://h\npassword_file: {password}")),
        &[("TOKENGATE_REDIS_PASSWORD", "x")],
        "store.redis.password_file",
        "not both",
    );
}

#[test]
fn proxy_protocol_needs_trusted_balancers() {
    refused(&format!("{BASE}proxy:\n  proxy_protocol: true\n"), "proxy.proxy_protocol", "trusted_proxies");
    refused(&format!("{BASE}proxy:\n  trusted_proxies: [10.0.0.0/40]\n"), "proxy.trusted_proxies[0]", "not an address");
    refused(
        &format!("{BASE}proxy:\n  token_limits_on_store_error: maybe\n"),
        "proxy.token_limits_on_store_error",
        "open, closed",
    );
    let c = load(&format!("{BASE}proxy:\n  proxy_protocol: true\n  trusted_proxies: [10.0.0.5, 192.168.0.0/16]\n"))
        .unwrap();
    let trusted = c.proxy.connections.proxy_protocol.as_deref().unwrap();
    assert_eq!(trusted.len(), 2);
    assert!(c.listener_settings().1.proxy_protocol.is_none(), "never on the admin port");
}

#[test]
fn unknown_field_at_the_top_level() {
    refused(&format!("{BASE}listn: 0.0.0.0:1\n"), "listn", "unknown field");
}

#[test]
fn unknown_nested_field() {
    refused(
        &format!("{BASE}store:\n  redis:\n    url: redis://h\n    pasword: x\n"),
        "store.redis.pasword",
        "unknown field",
    );
    refused(&format!("{BASE}tokens:\n  expiry: [30]\n"), "tokens.expiry", "unknown field");
}

#[test]
fn bad_address() {
    refused(&format!("{BASE}listen: localhost\n"), "listen", "invalid socket address");
    refused(&format!("{BASE}admin:\n  listen: 127.0.0.1:99999\n"), "admin.listen", "invalid socket address");
    refused(
        &format!("{BASE}listen: 127.0.0.1:9000\nadmin:\n  listen: 127.0.0.1:9000\n"),
        "admin.listen",
        "must differ",
    );
}

#[test]
fn bad_duration() {
    let redis = "store:\n  redis:\n    url: redis://h\n";
    refused(&format!("{BASE}{redis}    connect_timeout: soon\n"), "store.redis.connect_timeout", "invalid duration");
    refused(&format!("{BASE}{redis}    command_timeout: 0s\n"), "store.redis.command_timeout", "greater than zero");
    refused(&format!("{BASE}shutdown:\n  drain_timeout: 30\n"), "shutdown.drain_timeout", "invalid duration");
}

#[test]
fn unknown_role() {
    refused(
        &format!("{BASE}tokens:\n  default_roles: [viewer, superuser]\n"),
        "tokens.default_roles[1]",
        "unknown role \"superuser\"",
    );
    refused(&format!("{BASE}roles: [viewer, Admin]\n"), "roles[1]", "invalid role name");
    refused(&format!("{BASE}roles: [viewer, viewer]\n"), "roles[1]", "duplicate role");
    refused(&format!("{BASE}roles: []\n"), "roles", "at least one");
}

#[test]
fn bad_or_missing_upstream() {
    refused("listen: 0.0.0.0:1\n", "upstream", "required");
    refused("upstream: not a url\n", "upstream", "invalid URL");
    refused("upstream: ftp://files.example\n", "upstream", "http:// or https://");
}

#[test]
fn bad_store() {
    refused(&format!("{BASE}store:\n  embedded: {{}}\n  redis:\n    url: redis://h\n"), "store", "not both");
    refused(&format!("{BASE}store:\n  redis: {{}}\n"), "store.redis", "set one of `store.redis.url`");
    refused(&format!("{BASE}store:\n  redis:\n    url: http://h\n"), "store.redis.url", "invalid Redis URL");
    refused(
        &format!("{BASE}store:\n  redis:\n    url: redis://h\n    key_prefix: 'a{{b}}'\n"),
        "store.redis.key_prefix",
        "invalid prefix",
    );
    refused(&format!("{BASE}store:\n  embedded:\n    path: ''\n"), "store.embedded.path", "must not be empty");
}

#[test]
fn bad_token_settings() {
    refused(&format!("{BASE}tokens:\n  personal_prefix: TG\n"), "tokens.personal_prefix", "lowercase");
    refused(&format!("{BASE}tokens:\n  organization_prefix: tgp\n"), "tokens.organization_prefix", "must differ");
    refused(&format!("{BASE}tokens:\n  expiry_days: [30, 0]\n"), "tokens.expiry_days[1]", "outside");
    refused(&format!("{BASE}tokens:\n  expiry_days: [30, 30]\n"), "tokens.expiry_days[1]", "duplicate");
    refused(&format!("{BASE}tokens:\n  expiry_days: []\n"), "tokens.expiry_days", "at least one");
    refused(&format!("{BASE}tokens:\n  expiry_days: [-5]\n"), "tokens.expiry_days[0]", "invalid value");
}

#[test]
fn wrong_value_type() {
    refused(&format!("{BASE}audit:\n  max_events: many\n"), "audit.max_events", "invalid type");
    refused(&format!("{BASE}audit:\n  max_events: 0\n"), "audit.max_events", "between 1 and");
    refused(&format!("{BASE}tokens:\n  allow_restore: sometimes\n"), "tokens.allow_restore", "invalid type");
}

#[test]
fn bad_logging() {
    refused(&format!("{BASE}log:\n  format: xml\n"), "log.format", "not one of");
    refused(&format!("{BASE}log:\n  level: 'info,=='\n"), "log.level", "invalid filter");
}

#[test]
fn bad_pepper() {
    refused_with_env(BASE, &[("TOKENGATE_PEPPER", "short")], "tokens.pepper_file", "at least 16 bytes");
    refused(&format!("{BASE}tokens:\n  pepper_file: /nonexistent/pepper\n"), "tokens.pepper_file", "cannot read");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pepper");
    std::fs::write(&file, "0123456789abcdef0123456789abcdef\n").unwrap();
    let yaml = format!("{BASE}tokens:\n  pepper_file: {}\n", file.display());
    assert!(load(&yaml).unwrap().tokens.pepper.is_some());
    refused_with_env(&yaml, &[("TOKENGATE_PEPPER", "0123456789abcdef0")], "tokens.pepper_file", "not both");
    let c = Config::from_yaml(BASE, &env(&[("TOKENGATE_PEPPER", "0123456789abcdef0")])).unwrap();
    assert!(c.tokens.pepper.is_some());
    assert!(!format!("{c:?}").contains("0123456789abcdef0"), "the pepper is redacted");
}

#[test]
fn errors_from_environment_overrides_name_the_variable() {
    refused_with_env(BASE, &[("TOKENGATE_ADMIN__LISTEN", "nope")], "admin.listen", "set by TOKENGATE_ADMIN__LISTEN");
    refused_with_env(BASE, &[("TOKENGATE_ADMIN__LISTN", "x")], "admin.listn", "unknown field");
    refused_with_env(
        BASE,
        &[("TOKENGATE_AUDIT__MAX_EVENTS", "lots")],
        "audit.max_events",
        "TOKENGATE_AUDIT__MAX_EVENTS",
    );
}

#[test]
fn invalid_yaml_reports_the_location() {
    let err = load("upstream: [\n").unwrap_err().to_string();
    assert!(err.contains("not valid YAML") && err.contains("line 1"), "{err}");
}

#[test]
fn route_rules_are_validated() {
    let ok = load(&format!(
        "{BASE}routes:\n  - path: /healthz\n    public: true\n  - path: /v1/*/deploy/**\n    methods: [POST]\n    roles: [admin]\n    scopes: [env:prod]\n"
    ))
    .unwrap();
    assert_eq!(ok.routes.len(), 2);
    refused(&format!("{BASE}routes:\n  - path: healthz\n"), "routes[0].path", "must start with '/'");
    refused(&format!("{BASE}routes:\n  - path: /a/../b\n"), "routes[0].path", "not a normalized path");
    refused(&format!("{BASE}routes:\n  - path: /a/**/b\n"), "routes[0].path", "last segment");
    refused(&format!("{BASE}routes:\n  - path: /a\n  - path: /a/b\n"), "routes[1].path", "can never match");
    refused(&format!("{BASE}routes:\n  - path: /a\n    roles: [root]\n"), "routes[0].roles[0]", "unknown role");
    refused(&format!("{BASE}routes:\n  - path: /a\n    scopes: [prod]\n"), "routes[0].scopes[0]", "invalid scope");
    refused(&format!("{BASE}routes:\n  - path: /a\n    methods: [get]\n"), "routes[0].methods[0]", "invalid method");
    refused(
        &format!("{BASE}routes:\n  - path: /a\n    public: true\n    roles: [admin]\n"),
        "routes[0].public",
        "cannot also",
    );
    refused(&format!("{BASE}routes:\n  - path: /a\n    publik: true\n"), "routes[0].publik", "unknown field");
    refused(&format!("{BASE}routes:\n  - methods: [GET]\n"), "routes[0]", "missing field `path`");
}

#[test]
fn data_path_settings_are_validated() {
    let c = load(BASE).unwrap();
    assert_eq!(c.proxy.identity_header_prefix, "X-Auth-");
    assert_eq!(c.proxy.connections.max_header_bytes, 65_536);
    assert_eq!(c.cache.ttl, Duration::from_secs(30));
    assert_eq!(c.cache.negative_ttl, Duration::from_secs(5));
    assert_eq!(c.last_used.flush_interval, Duration::from_secs(10));
    refused(&format!("{BASE}proxy:\n  x_forwarded: maybe\n"), "proxy.x_forwarded", "not one of");
    refused(
        &format!("{BASE}proxy:\n  identity_header_prefix: 'X Auth'\n"),
        "proxy.identity_header_prefix",
        "invalid header prefix",
    );
    refused(&format!("{BASE}proxy:\n  max_connections: 0\n"), "proxy.max_connections", "greater than zero");
    refused(&format!("{BASE}proxy:\n  max_header_bytes: 100\n"), "proxy.max_header_bytes", "between 8192");
    refused(&format!("{BASE}proxy:\n  header_read_timeout: fast\n"), "proxy.header_read_timeout", "invalid duration");
    refused(&format!("{BASE}proxy:\n  idle_timeout: 0s\n"), "proxy.idle_timeout", "greater than zero");
    refused(&format!("{BASE}proxy:\n  idle_timeout: 60\n"), "proxy.idle_timeout", "time unit needed");
    refused(&format!("{BASE}proxy:\n  max_headers: 0\n"), "proxy.max_headers", "between 1 and 1000");
    refused(&format!("{BASE}proxy:\n  max_headers: 5000\n"), "proxy.max_headers", "between 1 and 1000");
    refused(
        &format!("{BASE}proxy:\n  upstream_response_timeout: 0ms\n"),
        "proxy.upstream_response_timeout",
        "greater than zero",
    );
    refused(&format!("{BASE}proxy:\n  tls: {{}}\n"), "proxy.tls.cert_file", "required");
    refused(&format!("{BASE}proxy:\n  forward_auth: true\n"), "proxy.forward_auth", "unknown field");
    refused(&format!("{BASE}cache:\n  ttl: 1m\n  max_staleness: 30s\n"), "cache.max_staleness", "at least `cache.ttl`");
    refused(&format!("{BASE}cache:\n  negative_ttl: soon\n"), "cache.negative_ttl", "invalid duration");
    refused(&format!("{BASE}cache:\n  max_entries: 0\n"), "cache.max_entries", "greater than zero");
    refused(&format!("{BASE}last_used:\n  flush_interval: 10\n"), "last_used.flush_interval", "time unit needed");
    refused(&format!("{BASE}last_used:\n  max_pending: 0\n"), "last_used.max_pending", "greater than zero");
}

#[test]
fn a_non_loopback_admin_listener_needs_admin_keys() {
    refused(&format!("{BASE}admin:\n  listen: 0.0.0.0:9091\n"), "admin.listen", "no admin keys are configured");
    let keys = [("TOKENGATE_ADMIN_KEYS", "key-one-0123456789abcdef, key-two-0123456789abcdef")];
    let c = Config::from_yaml(&format!("{BASE}admin:\n  listen: 0.0.0.0:9091\n"), &env(&keys)).unwrap();
    assert!(c.admin.keys.contains("key-two-0123456789abcdef"));
    assert!(!c.admin.keys.contains("key-two-0123456789abcde"));
    assert!(!format!("{c:?}").contains("key-one"), "keys are redacted");
    refused_with_env(BASE, &[("TOKENGATE_ADMIN_KEYS", "short")], "TOKENGATE_ADMIN_KEYS", "at least 16");
    refused(&format!("{BASE}admin:\n  keys_file: /nonexistent/keys\n"), "admin.keys_file", "cannot read");
    refused(&format!("{BASE}admin:\n  max_body_bytes: 10\n"), "admin.max_body_bytes", "between 1024");
    refused(&format!("{BASE}admin:\n  max_connections: 1\n"), "admin.max_connections", "between 2 and 10000");
    refused(&format!("{BASE}admin:\n  max_concurrent_calls: 0\n"), "admin.max_concurrent_calls", "at least 1");
    refused(
        &format!("{BASE}admin:\n  max_connections: 8\n  max_concurrent_calls: 8\n"),
        "admin.max_concurrent_calls",
        "below `admin.max_connections` (8)",
    );
    let c = load(&format!("{BASE}admin:\n  max_connections: 8\n  max_concurrent_calls: 7\n")).unwrap();
    assert_eq!((c.admin.max_connections, c.admin.max_concurrent_calls), (8, 7));
}

#[test]
fn admin_keys_are_named_and_may_expire() {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    use tokengate::config::KeySource;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-keys");
    let yaml = format!("{BASE}admin:\n  keys_file: {}\n", file.display());
    std::fs::write(
        &file,
        "# operators\n\nci-deploy 3f9c0123456789abcdef  2027-01-31T00:00:00Z\n  bare-key-0123456789abcdef  \nlocal_1.x oooooooooooooooo 2027-01-31T02:00:00+02:00\n",
    )
    .unwrap();
    let env_keys =
        [("TOKENGATE_ADMIN_KEYS", "robot=robot-key-0123456789, bare-env-key-0123456789abc, padded0123456789ab==")];
    let c = Config::from_yaml(&yaml, &env(&env_keys)).unwrap();
    let keys: Vec<_> = c.admin.keys.iter().map(|k| (k.name.as_str(), k.source, k.expires_at)).collect();
    let jan31 = UNIX_EPOCH + Duration::from_secs(1_801_353_600);
    assert_eq!(
        keys,
        [
            ("robot", KeySource::Env, None),
            ("env-2", KeySource::Env, None),
            ("env-3", KeySource::Env, None),
            ("ci-deploy", KeySource::File, Some(jan31)),
            ("key-4", KeySource::File, None),
            ("local_1.x", KeySource::File, Some(jan31)),
        ]
    );
    let now = SystemTime::now();
    for key in ["robot-key-0123456789", "bare-env-key-0123456789abc", "padded0123456789ab==", "3f9c0123456789abcdef"] {
        assert!(c.admin.keys.find(key, now).is_some(), "{key}");
    }
    assert!(c.admin.keys.find("3f9c0123456789abcdef", jan31).is_none(), "refused from its expiry on");
    assert!(c.admin.keys.find("3f9c0123456789abcdef", jan31 - Duration::from_millis(1)).is_some());
    assert!(c.admin.keys.find("robot=robot-key-0123456789", now).is_none(), "the name is not part of the key");
    let debug = format!("{c:?}");
    assert!(!debug.contains("3f9c") && !debug.contains("robot-key") && !debug.contains("padded"), "redacted");
}

#[test]
fn a_bad_admin_keys_line_is_refused_by_line_without_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-keys");
    let yaml = format!("{BASE}admin:\n  keys_file: {}\n", file.display());
    let key = "s3cr3t-0123456789abcdef";
    let cases = [
        (format!("# c\nops {key}\nops other-0123456789abcdef\n"), 3, "repeats the name of line 2"),
        (format!("ops {key}\n\nnew {key}\n"), 3, "repeats the key of line 1"),
        (format!("ops {key}\nshort s3cr3t-short\n"), 2, "at least 16"),
        ("s3cr3t-short\n".to_string(), 1, "at least 16"),
        (format!("ops {key} 2027-13-01T00:00:00Z\n"), 1, "RFC 3339"),
        (format!("ops {key} 2027-01-31\n"), 1, "RFC 3339"),
        (format!("ops {key} 2027-01-31 00:00:00Z\n"), 1, "expected `<name> <key>`"),
        (format!("ops {key} 2027-01-31T00:00:00+25:00\n"), 1, "RFC 3339"),
        (format!("o/ps {key}\n"), 1, "1-64 characters"),
        (format!("{key}+/= ops\n"), 1, "1-64 characters"),
        (format!("{} {key}\n", "n".repeat(65)), 1, "1-64 characters"),
        (format!("# only\n\n{key} {key}x {key}y {key}z\n"), 3, "expected `<name> <key>`"),
        (format!("key-2 {key}x\n{key}\n"), 2, "repeats the name of line 1"),
    ];
    for (content, line, problem) in cases {
        std::fs::write(&file, &content).unwrap();
        let err = Config::from_yaml(&yaml, &BTreeMap::new()).expect_err(&content).to_string();
        assert!(err.starts_with("`admin.keys_file`"), "{err}");
        assert!(err.contains(&format!("{} line {line}: ", file.display())), "{content:?}: {err}");
        assert!(err.contains(problem), "{content:?}: {err}");
        assert!(!err.contains("s3cr3t"), "the key is never echoed: {err}");
    }
    // A name in the file that the environment already uses.
    std::fs::write(&file, format!("robot {key}\n")).unwrap();
    let env_keys = env(&[("TOKENGATE_ADMIN_KEYS", "robot=robot-key-0123456789")]);
    let err = Config::from_yaml(&yaml, &env_keys).unwrap_err().to_string();
    assert!(err.contains("line 1: repeats the name of TOKENGATE_ADMIN_KEYS entry 1"), "{err}");
    let env_keys = env(&[("TOKENGATE_ADMIN_KEYS", &format!("x={key}"))]);
    std::fs::write(&file, format!("ops {key}\n")).unwrap();
    let err = Config::from_yaml(&yaml, &env_keys).unwrap_err().to_string();
    assert!(err.contains("repeats the key of TOKENGATE_ADMIN_KEYS entry 1") && !err.contains("s3cr3t"), "{err}");
    // The environment's own mistakes name their entry, never the key.
    for (value, problem) in [
        ("a=s3cr3t-0123456789ab, a=s3cr3t-0123456789cd", "entry 2: repeats the name of entry 1"),
        ("s3cr3t-0123456789ab, b=s3cr3t-0123456789ab", "entry 2: repeats the key of entry 1"),
        ("ok=s3cr3t-0123456789ab, s3cr3t", "entry 2: every admin key must be at least 16"),
    ] {
        let err = Config::from_yaml(BASE, &env(&[("TOKENGATE_ADMIN_KEYS", value)])).unwrap_err().to_string();
        assert!(err.starts_with("`TOKENGATE_ADMIN_KEYS`") && err.contains(problem), "{value}: {err}");
        assert!(!err.contains("s3cr3t"), "{err}");
    }
}

#[test]
fn webhooks_need_a_url_and_a_signing_secret() {
    let hook = "notifications:\n  webhooks:\n    - url: https://hooks.example/t\n";
    refused(&format!("{BASE}{hook}"), "notifications.secret_file", "signing secret");
    let c =
        Config::from_yaml(&format!("{BASE}{hook}"), &env(&[("TOKENGATE_WEBHOOK_SECRET", "whsec-0123456789abcdef")]))
            .unwrap();
    assert_eq!(c.notifications.webhooks.len(), 1);
    refused(
        &format!("{BASE}notifications:\n  webhooks:\n    - url: ftp://x\n"),
        "notifications.webhooks[0].url",
        "http:// or https://",
    );
    refused(
        &format!("{BASE}notifications:\n  webhooks:\n    - uri: https://x\n"),
        "notifications.webhooks[0].uri",
        "unknown field",
    );
    refused(&format!("{BASE}notifications:\n  max_attempts: 0\n"), "notifications.max_attempts", "between 1 and 20");
}

/// Issue 9: the flood, channel-down and path-parameter settings, with their documented defaults
/// and an error naming the field for each bad value.
#[test]
fn hardening_settings_have_defaults_and_are_validated() {
    let c = load(BASE).unwrap();
    assert_eq!(c.cache.ttl_without_invalidations, Duration::from_secs(1));
    assert_eq!(c.cache.max_negative_entries, 10_000);
    assert_eq!(c.cache.max_concurrent_fetches, 64);
    assert_eq!(c.cache.lookup_timeout, Duration::from_millis(500));
    assert_eq!((c.proxy.failed_auth.burst, c.proxy.failed_auth.refill_interval), (30, Duration::from_secs(1)));
    assert_eq!(c.proxy.failed_auth.max_clients, 100_000);
    assert!(!c.proxy.allow_path_parameters);
    let shipped = Config::load(std::path::Path::new("config/tokengate.yaml"), &BTreeMap::new()).unwrap();
    assert_eq!(shipped.cache.lookup_timeout, c.cache.lookup_timeout, "config/tokengate.yaml documents the default");
    assert_eq!(shipped.proxy.failed_auth, c.proxy.failed_auth);

    let bad = |section: &str, field: &str, problem: &str| refused(&format!("{BASE}{section}"), field, problem);
    bad("cache:\n  ttl: 10s\n  ttl_without_invalidations: 20s\n", "cache.ttl_without_invalidations", "cache.ttl");
    bad("cache:\n  ttl_without_invalidations: 0s\n", "cache.ttl_without_invalidations", "greater than zero");
    bad("cache:\n  max_negative_entries: 0\n", "cache.max_negative_entries", "greater than zero");
    bad("cache:\n  max_concurrent_fetches: 0\n", "cache.max_concurrent_fetches", "greater than zero");
    bad("cache:\n  lookup_timeout: soon\n", "cache.lookup_timeout", "invalid duration");
    bad("proxy:\n  failed_auth:\n    max_clients: 0\n", "proxy.failed_auth.max_clients", "greater than zero");
    bad("proxy:\n  failed_auth:\n    burst: -1\n", "proxy.failed_auth.burst", "invalid");
    bad("proxy:\n  failed_auth:\n    refill_interval: 0s\n", "proxy.failed_auth.refill_interval", "greater than zero");
    bad("proxy:\n  failed_auth:\n    per_minute: 5\n", "proxy.failed_auth.per_minute", "unknown field");
    bad("proxy:\n  allow_path_parameters: sometimes\n", "proxy.allow_path_parameters", "invalid");
    let off = load(&format!("{BASE}proxy:\n  failed_auth:\n    burst: 0\n")).unwrap();
    assert_eq!(off.proxy.failed_auth.burst, 0, "0 turns the limit off");
}

#[test]
fn identity_groups_are_validated() {
    let c = load(&format!(
        "{BASE}identity:\n  groups:\n    Engineering Team: {{roles: [developer, viewer, developer]}}\n    security: {{admin: auditor}}\n  operators: [alice@example.com]\n"
    ))
    .unwrap();
    assert_eq!(c.identity.groups["Engineering Team"].roles, ["developer", "viewer"]);
    assert_eq!(c.identity.groups["security"].admin, Some(tokengate::token::AdminRole::Auditor));
    assert_eq!(c.identity.operators, ["alice@example.com"]);
    refused(
        &format!("{BASE}identity:\n  groups:\n    eng: {{roles: [wizard]}}\n"),
        "identity.groups.eng.roles[0]",
        "unknown role \"wizard\"",
    );
    refused(
        &format!("{BASE}identity:\n  groups:\n    eng: {{admin: root}}\n"),
        "identity.groups.eng.admin",
        "unknown admin role \"root\"",
    );
    refused(&format!("{BASE}identity:\n  groups:\n    eng: {{}}\n"), "identity.groups.eng", "grants nothing");
    refused(
        &format!("{BASE}identity:\n  groups:\n    eng: {{scopes: [\"env:\"]}}\n"),
        "identity.groups.eng.scopes[0]",
        "invalid scope",
    );
    refused(
        &format!("{BASE}identity:\n  groups:\n    eng: {{role: [viewer]}}\n"),
        "identity.groups.eng.role",
        "unknown field `role`",
    );
    refused(&format!("{BASE}identity:\n  operators: [\"a b\"]\n"), "identity.operators[0]", "not a principal id");
}

#[test]
fn the_scim_credential_and_organization() {
    let c = load(BASE).unwrap();
    assert!(c.scim.token.is_none() && c.scim.org.is_none(), "SCIM is off by default");
    let token = "scim-0123456789abcdef0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scim-token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let yaml = format!("{BASE}scim:\n  token_file: {}\n  org: acme\n", file.display());
    let c = load(&yaml).unwrap();
    assert_eq!(c.scim.token.as_ref().unwrap().expose(), token, "the trailing newline is dropped");
    assert_eq!(c.scim.org.as_deref(), Some("acme"));
    assert!(!format!("{c:?}").contains(token), "the SCIM token is redacted");
    let c = Config::from_yaml(BASE, &env(&[("TOKENGATE_SCIM_TOKEN", token)])).unwrap();
    assert_eq!(c.scim.token.unwrap().expose(), token);
    refused_with_env(&yaml, &[("TOKENGATE_SCIM_TOKEN", token)], "scim.token_file", "not both");
    refused_with_env(BASE, &[("TOKENGATE_SCIM_TOKEN", "short")], "TOKENGATE_SCIM_TOKEN", "at least 32 characters");
    refused_with_env(BASE, &[("TOKENGATE_SCIM_TOKEN", &format!("{token} x"))], "TOKENGATE_SCIM_TOKEN", "printable");
    std::fs::write(&file, "short\n").unwrap();
    refused(&yaml, "scim.token_file", "at least 32 characters");
    refused(&format!("{BASE}scim:\n  token_file: /nonexistent/scim\n"), "scim.token_file", "cannot read");
    refused(&format!("{BASE}scim:\n  org: \"a b\"\n"), "scim.org", "not an organization id");
    refused(&format!("{BASE}scim:\n  tokens: x\n"), "scim.tokens", "unknown field");
    refused_with_env(
        BASE,
        &[("TOKENGATE_SCIM_TOKEN", token), ("TOKENGATE_ADMIN_KEYS", &format!("other-key-0123456789,{token}"))],
        "scim.token_file",
        "differ from every admin key",
    );
}

#[test]
fn sign_in_settings_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "a-session-key-of-at-least-32-characters\n").unwrap();
    let oidc = |body: &str| format!("{BASE}identity:\n  oidc:\n{body}  sessions:\n    keys_file: {}\n", keys.display());
    let good = "    issuer: https://login.example.com\n    client_id: tokengate\n    redirect_url: https://tokens.example.com/auth/callback\n";
    let c = load(&oidc(good)).unwrap();
    let o = c.identity.oidc.unwrap();
    assert_eq!((o.issuer.as_str(), o.claims.id.as_str(), o.scopes.len()), ("https://login.example.com", "sub", 2));
    assert_eq!(c.identity.sessions.unwrap().idle_timeout, Duration::from_secs(3600));
    refused(
        &oidc(
            "    issuer: http://login.example.com\n    client_id: t\n    redirect_url: https://t.example.com/auth/callback\n",
        ),
        "identity.oidc.issuer",
        "https://",
    );
    refused(
        &oidc("    issuer: https://login.example.com\n    redirect_url: https://t.example.com/auth/callback\n"),
        "identity.oidc.client_id",
        "is required",
    );
    refused(
        &oidc(
            "    issuer: https://login.example.com\n    client_id: t\n    redirect_url: https://t.example.com/callback\n",
        ),
        "identity.oidc.redirect_url",
        "/auth/callback",
    );
    refused(&oidc(&format!("{good}    scopes: [\"a b\"]\n")), "identity.oidc.scopes[0]", "invalid scope");
    refused(&oidc(&format!("{good}    org: \"no spaces\"\n")), "identity.oidc.org", "not an organization id");
    refused(&format!("{BASE}identity:\n  oidc:\n{good}"), "identity.sessions.keys_file", "sign-in needs session keys");
    refused_with_env(
        &format!("{BASE}identity:\n  sessions: {{}}\n"),
        &[("TOKENGATE_SESSION_KEYS", "short")],
        "identity.sessions.keys_file",
        "at least 32 characters",
    );
    refused(
        &format!("{BASE}identity:\n  sessions:\n    keys_file: {}\n    idle_timeout: 13h\n", keys.display()),
        "identity.sessions.idle_timeout",
        "must not exceed",
    );
    refused(
        &format!("{BASE}identity:\n  trusted_headers: {{peers: []}}\n"),
        "identity.trusted_headers.peers",
        "name the auth proxies",
    );
    refused(
        &format!("{BASE}identity:\n  trusted_headers: {{peers: [\"10.0.0.0/33\"]}}\n"),
        "identity.trusted_headers.peers[0]",
        "not an address",
    );
    refused(
        &format!("{BASE}identity:\n  trusted_headers: {{peers: [10.0.0.1, \"::/0\"]}}\n"),
        "identity.trusted_headers.peers[1]",
        "from anyone",
    );
    refused(
        &format!("{BASE}identity:\n  trusted_headers: {{peers: [10.0.0.1], user: \"bad header\"}}\n"),
        "identity.trusted_headers.user",
        "not a header name",
    );
}

mod keys_file_props {
    use proptest::prelude::*;
    use tokengate::config::parse_keys_file;

    /// A key, a line of the keys file holding it, and whether the key was written first: mostly plausible, sometimes mangled (fields
    /// swapped, repeated, bad names and dates, comment marks, a byte order mark, controls).
    fn line() -> impl Strategy<Value = (String, String, bool)> {
        let expiry = prop_oneof![Just(String::new()), Just(" 2027-01-31T00:00:00Z".to_string()), "[ 0-9TZ:+.-]{0,30}"];
        ("[A-Za-z0-9+/=_-]{16,40}", "[A-Za-z0-9._/+ -]{0,70}", expiry, 0..5u8, "[#\t \u{feff}\u{202e}]{0,2}").prop_map(
            |(secret, name, expiry, order, prefix)| {
                let line = match order {
                    0 => format!("{prefix}{name} {secret}{expiry}"),
                    1 => format!("{prefix}{secret} {name}{expiry}"),
                    2 => format!("{prefix}{secret}"),
                    3 => format!("{prefix}{name} {secret} {secret}{expiry}"),
                    _ => format!("{prefix}{secret}{expiry} {name}"),
                };
                (secret, line, matches!(order, 1 | 4))
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        /// Whatever the file holds, parsing never panics, an error names a line of the file, and
        /// neither an error nor a parsed key's `Debug` repeats a key.
        #[test]
        fn errors_never_repeat_a_key(lines in proptest::collection::vec(line(), 1..6)) {
            let text = lines.iter().map(|(_, l, _)| l.as_str()).collect::<Vec<_>>().join("\n");
            match parse_keys_file(&text) {
                Ok(keys) => {
                    for k in &keys {
                        prop_assert!(!k.name.is_empty() && k.name.len() <= 64);
                        // A line written key first, `<key> <name>`, cannot be told from `<name> <key>`
                        // when both would be valid: its key is taken for the name (documented).
                        for (secret, _, _) in lines.iter().filter(|(_, _, key_first)| !key_first) {
                            let debug = format!("{k:?}");
                            prop_assert!(!debug.contains(secret.as_str()));
                        }
                    }
                }
                Err(e) => {
                    prop_assert!(e.line >= 1 && e.line <= text.lines().count(), "{e}");
                    let shown = e.to_string();
                    for (secret, _, _) in &lines {
                        prop_assert!(!shown.contains(&secret[..12]), "{shown}");
                    }
                }
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = parse_keys_file(&text);
        }
    }
}
