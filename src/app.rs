//! Builds the running service from config and runs it until the shutdown future resolves.
//!
//! Shutdown order: readiness turns to "draining"; the proxy stops accepting and drains in-flight
//! requests and tunnels (up to `shutdown.drain_timeout`); pending last-used times are flushed;
//! then the admin listener stops, and webhook deliveries in flight get a few seconds.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use std::sync::Arc;
use std::time::Duration;

use crate::admin::Admin;
use crate::admin::api::Api;
use crate::admin::keys::OperatorKeys;
use crate::admin::webhook::{Notifier, NotifierTask};
use crate::auth::Authenticator;
use crate::auth::cache::AuthCache;
use crate::auth::metering::Metering;
use crate::config::{Config, RuntimeConfig};
use crate::metrics::{AdminKeyMetrics, CacheMetrics, ProxyMetrics, RecorderMetrics, WebhookMetrics};
use crate::net::server::{self, Drain};
use crate::proxy::Proxy;
use crate::proxy::recorder::{Recorder, RecorderTask};
use crate::store::{self, Store, StoreOptions};
use crate::token::digest::Hasher;
use crate::token::mint::Minter;

/// How long webhook deliveries in flight may continue after the listeners have stopped.
const NOTIFY_GRACE: Duration = Duration::from_secs(5);

/// The assembled service.
pub struct App {
    config: Config,
    store: Store,
    proxy: Proxy,
    admin: Admin,
    recorder_task: RecorderTask,
    notifier: Notifier,
    notifier_task: NotifierTask,
    tunnels: TaskTracker,
    proxy_metrics: ProxyMetrics,
}

impl App {
    /// The tokio runtime `serve` runs on: single-threaded for one worker thread (no work-stealing
    /// bookkeeping, no cross-thread wake-ups: the most requests per core), multi-threaded beyond.
    pub fn runtime(config: &RuntimeConfig) -> std::io::Result<tokio::runtime::Runtime> {
        match config.worker_threads {
            1 => tokio::runtime::Builder::new_current_thread().enable_all().build(),
            n => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build(),
        }
    }

    /// Opens the store and builds every component. A Redis store that is down does not stop
    /// startup: it reconnects by itself, and readiness reports the outage meanwhile.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let options = StoreOptions { allow_restore: config.tokens.allow_restore, audit_limit: config.audit.max_events };
        let store = store::open(&config.store, options).await.context("opening the token store")?;
        if let Err(e) = store.ping().await {
            tracing::warn!(backend = store.backend(), error = %e, "token store not reachable yet; will keep retrying");
        }
        let registry = Registry::new();
        let proxy_metrics = ProxyMetrics::new(&registry);
        let cache = AuthCache::new(store.clone(), config.cache.clone(), CacheMetrics::new(&registry));
        let hasher = Hasher::new(config.tokens.pepper.as_ref());
        let authenticator = Authenticator::new(config.tokens.format.clone(), hasher.clone(), cache);
        let (recorder, recorder_task) = Recorder::start(
            store.clone(),
            config.last_used.flush_interval,
            config.last_used.max_pending,
            RecorderMetrics::new(&registry),
        );
        let tunnels = TaskTracker::new();
        let metering = Metering::new(store.clone(), config.proxy.token_limits_on_store_error, &registry);
        let proxy =
            Proxy::new(&config, authenticator.clone(), metering, recorder, proxy_metrics.clone(), tunnels.clone());
        let (notifier, notifier_task) = Notifier::start(&config.notifications, WebhookMetrics::new(&registry));
        let api = Api {
            store: store.clone(),
            minter: Minter::new(config.tokens.format.clone(), hasher),
            config: Arc::new(config.clone()),
            notifier: notifier.clone(),
            keys: OperatorKeys::start(&config.admin, config.scim.token.clone(), AdminKeyMetrics::new(&registry)),
        };
        let admin = Admin::new(store.clone(), registry, authenticator, api);
        Ok(Self { config, store, proxy, admin, recorder_task, notifier, notifier_task, tunnels, proxy_metrics })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Binds the configured proxy and admin addresses.
    pub async fn bind(config: &Config) -> anyhow::Result<(TcpListener, TcpListener)> {
        let proxy =
            TcpListener::bind(config.listen).await.with_context(|| format!("binding listen {}", config.listen))?;
        let admin = TcpListener::bind(config.admin.listen)
            .await
            .with_context(|| format!("binding admin.listen {}", config.admin.listen))?;
        Ok((proxy, admin))
    }

    /// Serves both listeners until `shutdown` resolves, then drains and flushes.
    pub async fn run(
        self,
        proxy_listener: TcpListener,
        admin_listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let tls = match &self.config.proxy.tls {
            Some(files) => Some(TlsAcceptor::from(crate::net::tls::server_config(&files.cert_file, &files.key_file)?)),
            None => None,
        };
        let proxy_addr: SocketAddr = proxy_listener.local_addr()?;
        let admin_addr: SocketAddr = admin_listener.local_addr()?;
        let (settings, admin_settings) = self.config.listener_settings();

        let (stop_proxy, proxy_stopped) = tokio::sync::oneshot::channel::<()>();
        let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let proxy = self.proxy.clone();
        let proxy_task = tokio::spawn(server::serve(
            proxy_listener,
            tls.clone(),
            settings,
            move |req, conn| {
                let proxy = proxy.clone();
                async move { proxy.handle(req, conn).await }
            },
            Some(self.proxy_metrics.open_connections.clone()),
            Drain { timeout: self.config.shutdown.drain_timeout, tunnels: self.tunnels.clone() },
            async move {
                let _ = proxy_stopped.await;
            },
        ));
        let admin = self.admin.clone();
        let admin_task = tokio::spawn(server::serve(
            admin_listener,
            None,
            admin_settings,
            move |req, conn| {
                let admin = admin.clone();
                async move { admin.handle(req, conn).await }
            },
            None,
            Drain { timeout: self.config.shutdown.drain_timeout, tunnels: TaskTracker::new() },
            async move {
                let _ = admin_stopped.await;
            },
        ));
        tracing::info!(
            listen = %proxy_addr,
            admin = %admin_addr,
            tls = tls.is_some(),
            backend = self.store.backend(),
            upstream = %self.config.upstream,
            "tokengate started"
        );

        shutdown.await;
        let drain_deadline = tokio::time::Instant::now() + self.config.shutdown.drain_timeout;
        self.admin.set_draining();
        let _ = stop_proxy.send(());
        proxy_task.await.context("proxy server task")?;
        self.recorder_task.shutdown_by(drain_deadline).await;
        let _ = stop_admin.send(());
        admin_task.await.context("admin server task")?;
        drop(self.admin);
        self.notifier_task.shutdown(self.notifier, NOTIFY_GRACE).await;
        tracing::info!("tokengate stopped");
        Ok(())
    }
}
