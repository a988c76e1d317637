//! tokengate: an authentication sidecar for personal and organization API tokens.
//!
//! The map (ARCHITECTURE.md has the request's way through it and the invariants). Each part may
//! use the parts listed after it in this table, never one listed before it:
//!
//! | module      | what lives there                                                            |
//! |-------------|-----------------------------------------------------------------------------|
//! | [`cli`]     | the command line: `serve`'s arguments, `token ...`, `demo`, `healthcheck`   |
//! | [`app`]     | builds the service from config; runs and drains it                         |
//! | [`admin`]   | the admin listener: lifecycle API, access rules, Tokens page, health, webhooks |
//! | [`proxy`]   | the data path: admit, rewrite, send; last-used recording                    |
//! | [`auth`]    | the bearer credential, the token decision, the cache, failure limits        |
//! | [`store`]   | the `TokenStore` trait and its embedded (redb) and Redis backends           |
//! | [`config`]  | YAML + environment config, parsed then validated into typed config          |
//! | [`net`]     | listeners: HTTP/1.1 + HTTP/2, TLS, connection limits and deadlines, drain   |
//! | [`policy`]  | what a request needs: path normalization, route rules, scopes (pure)        |
//! | [`token`]   | the token model: records, lifecycle, principals, audit; wire format, digests, minting (pure) |
//! | [`metrics`], [`logging`], [`shutdown`], [`clock`] | cross-cutting helpers, used anywhere |

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
