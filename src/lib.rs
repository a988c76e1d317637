//! tokengate: an authentication sidecar for personal and organization API tokens.
//!
//! The map; ARCHITECTURE.md has the request's way through it and the invariants, and
//! `tests/architecture.rs` holds every part to the dependencies listed here.
//!
//! | module       | what lives there                                                | may use |
//! |--------------|------------------------------------------------------------------|---------|
//! | [`cli`]      | the command line: arguments, `token ...`, `demo`, `healthcheck`  | anything |
//! | [`app`]      | builds every part from config; runs both listeners; drains       | all but `cli` |
//! | [`admin`]    | the admin listener: /v1 API, access rules, operator keys, views, errors, webhooks, Tokens page, SCIM, health | auth, store, token, policy, net, config, metrics, clock |
//! | [`proxy`]    | the data path: admit, rewrite, send; failures; last-used recorder | auth, store, token, policy, net, config, metrics, clock |
//! | [`auth`]     | the bearer credential, the token decision, the cache, failure limits | store, token, config, metrics, clock |
//! | [`store`]    | the `TokenStore` trait; embedded (redb) and Redis backends         | token, config, clock |
//! | [`config`]   | YAML + environment, parsed then validated into typed config        | token, policy, net |
//! | [`net`]      | listeners: HTTP/1.1 + HTTP/2, TLS, deadlines, limits, JSON responses | nothing |
//! | [`token`]    | records, lifecycle, principals, audit; wire format, digests, minting | policy, clock |
//! | [`policy`]   | path normalization, route rules, scopes (pure)                   | nothing |
//! | [`metrics`], [`clock`], [`shutdown`] | cross-cutting helpers                      | nothing |
//! | [`logging`]  | the tracing subscriber                                           | config |

#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod policy;
pub mod proxy;
pub mod shutdown;
pub mod store;
pub mod token;
