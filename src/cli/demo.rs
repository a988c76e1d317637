//! `tokengate demo`: a self-contained tour on a fresh machine, no Redis and no config needed.
//!
//! It starts a small echo upstream (it answers every request with the headers it received, so
//! the injected identity is visible), tokengate in front of it on the embedded store in a
//! temporary directory, creates a principal and a token, and prints a ready `curl` line plus the
//! Tokens page address and a one-off admin key. Ctrl-C stops everything and removes the data.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::app::App;
use crate::config::Config;
use crate::store::Issue;
use crate::token::mint::{Minter, NewToken};
use crate::token::{Principal, TokenKind};
use crate::token::{TokenFormat, TokenId};

/// Answers every request with what it received, as JSON.
async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let headers: BTreeMap<&str, &str> =
        req.headers().iter().map(|(k, v)| (k.as_str(), v.to_str().unwrap_or("<binary>"))).collect();
    let body = serde_json::json!({
        "upstream": "tokengate demo echo",
        "method": req.method().as_str(),
        "path": req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "headers": headers,
    });
    let mut r = Response::new(Full::new(Bytes::from(format!("{body:#}\n"))));
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    Ok(r)
}

/// Serves the echo upstream on `listener` until the task is dropped.
pub async fn serve_echo(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        tokio::spawn(async move {
            let service = hyper::service::service_fn(echo);
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A random admin key for this demo run.
fn one_off_key() -> String {
    format!("demo-{}{}", TokenId::generate(), TokenId::generate())
}

/// Runs the demo until `shutdown` resolves.
pub async fn run(
    listen: SocketAddr,
    admin: SocketAddr,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("creating a temporary directory for the demo store")?;
    let upstream = TcpListener::bind("127.0.0.1:0").await.context("binding the echo upstream")?;
    let upstream_addr = upstream.local_addr()?;
    let echo_task = tokio::spawn(serve_echo(upstream));

    let key = one_off_key();
    let yaml = format!(
        "listen: {listen}\nupstream: http://{upstream_addr}\nadmin:\n  listen: {admin}\nstore:\n  embedded:\n    path: {}\nlog:\n  level: warn\nroutes:\n  - path: /public\n    public: true\n",
        dir.path().join("tokens.redb").display()
    );
    let env = BTreeMap::from([("TOKENGATE_ADMIN_KEYS".to_string(), key.clone())]);
    let config = Config::from_yaml(&yaml, &env).context("demo config")?;
    let app = App::build(config).await?;
    let (proxy_listener, admin_listener) = App::bind(app.config()).await?;
    let (proxy_addr, admin_addr) = (proxy_listener.local_addr()?, admin_listener.local_addr()?);

    let store = app.store().clone();
    let demo = Principal {
        id: "demo".into(),
        display_name: "Demo User".into(),
        org: Some("demo-org".into()),
        roles: vec!["viewer".into(), "developer".into()],
        limits: Default::default(),
        ..Default::default()
    };
    store.put_principal(&demo).await?;
    let minter = Minter::new(
        app.config().tokens.format.clone(),
        crate::token::digest::Hasher::new(app.config().tokens.pepper.as_ref()),
    );
    let request = NewToken {
        kind: TokenKind::Personal,
        name: "demo".into(),
        owner: "demo".into(),
        created_by: "demo".into(),
        lifetime: Duration::from_secs(30 * 86_400),
        roles: vec!["viewer".into(), "developer".into()],
        scopes: vec!["env:demo".parse().expect("valid scope")],
        limits: Default::default(),
    };
    let (secret, token) = minter.issue(store.as_ref(), &request).await?;
    let display = TokenFormat::default().display(token.kind, &token.id);

    println!(
        "tokengate demo is running.\n\n\
         Proxy:       http://{proxy_addr}  ->  echo upstream http://{upstream_addr}\n\
         Tokens page: http://{admin_addr}/   (sign in with the admin key below)\n\
         Admin key:   {key}\n\
         Token:       {display} (personal, owner \"demo\", roles viewer + developer)\n\n\
         Try it (the upstream echoes the identity headers tokengate injected):\n\n  \
         curl -s -H 'Authorization: Bearer {token}' http://{proxy_addr}/hello\n\n\
         Without a token (401), and on the public route (no token needed):\n\n  \
         curl -si http://{proxy_addr}/hello\n  \
         curl -s http://{proxy_addr}/public/info\n\n\
         Manage tokens from another terminal:\n\n  \
         TOKENGATE_ADMIN_URL=http://{admin_addr} TOKENGATE_ADMIN_KEY={key} tokengate token list\n\n\
         Press Ctrl-C to stop (the demo data is removed).",
        token = secret.expose(),
    );
    let result = app.run(proxy_listener, admin_listener, shutdown).await;
    echo_task.abort();
    drop(dir);
    result
}
