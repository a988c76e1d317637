//! tokengate: an authentication sidecar for personal and organization API tokens.
//!
//! Module map:
//!
//! | module        | concern                                                                |
//! |---------------|------------------------------------------------------------------------|
//! | [`cli`]       | command-line interface (clap)                                          |
//! | [`client`]    | `tokengate token ...`: the admin API client, tables and prompts        |
//! | [`config`]    | YAML + environment config, parsed then validated into typed config     |
//! | [`app`]       | builds the service from config; runs and drains it                     |
//! | [`demo`]      | `tokengate demo`: echo upstream + tokengate + a token, for a first look |
//! | [`server`]    | one listener: HTTP/1.1 + HTTP/2, TLS, limits, graceful drain           |
//! | [`tls`]       | rustls server config from PEM files                                    |
//! | [`proxy`]     | the data path: authenticate, sanitize, inject, forward                 |
//! | [`path`]      | request path normalization (once; shared by rules and upstream)        |
//! | [`routes`]    | ordered route rules: public paths, required roles and scopes           |
//! | [`auth`]      | bearer credential extraction and authentication through the cache      |
//! | [`limiter`]   | failed-authentication limits per client address                        |
//! | [`headers`]   | hop-by-hop removal, identity header stripping and injection            |
//! | [`responses`] | the one mapping from failures to HTTP responses                        |
//! | [`cache`]     | moka token / principal cache with invalidation and bounded staleness   |
//! | [`recorder`]  | coalesced, batched last-used recording                                 |
//! | [`admin`]     | admin listener: lifecycle API, access rules, Tokens page, health, metrics |
//! | [`webhook`]   | signed, retried token-created notifications                            |
//! | [`metrics`]   | Prometheus metrics per component on an explicit registry               |
//! | [`shutdown`]  | SIGTERM / Ctrl-C                                                       |
//! | [`logging`]   | tracing subscriber setup                                               |
//! | [`token`]     | token wire format: generate, parse, checksum, masked display           |
//! | [`digest`]    | SHA-256 / HMAC-SHA256 digests and constant-time comparison             |
//! | [`verify`]    | the token decision (digest, status, expiry) and an uncached verifier   |
//! | [`mint`]      | issuing new tokens (secret + record)                                   |
//! | [`model`]     | tokens, lifecycle rules, principals, audit events                      |
//! | [`scope`]     | scope grammar and nesting                                              |
//! | [`clock`]     | Unix-millisecond timestamps                                            |
//! | [`store`]     | the `TokenStore` trait and its embedded (redb) and Redis backends      |

#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod demo;
pub mod digest;
pub mod headers;
pub mod limiter;
pub mod logging;
pub mod metrics;
pub mod mint;
pub mod model;
pub mod path;
pub mod proxy;
pub mod recorder;
pub mod responses;
pub mod routes;
pub mod scope;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod tls;
pub mod token;
pub mod verify;
pub mod webhook;
