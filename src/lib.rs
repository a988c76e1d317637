//! tokengate: an authentication sidecar for personal and organization API tokens.
//!
//! Module map:
//!
//! | module      | concern                                                                  |
//! |-------------|--------------------------------------------------------------------------|
//! | [`cli`]     | command-line interface (clap)                                            |
//! | [`config`]  | YAML + environment config, parsed then validated into typed config       |
//! | [`app`]     | builds the running service from config and runs it until shutdown        |
//! | [`shutdown`]| the process's shutdown signal (SIGTERM / Ctrl-C)                          |
//! | [`logging`] | tracing subscriber setup                                                 |
//! | [`token`]   | token wire format: generate, parse, checksum, masked display             |
//! | [`digest`]  | SHA-256 / HMAC-SHA256 digests and constant-time comparison               |
//! | [`model`]   | tokens, lifecycle rules, principals, audit events                        |
//! | [`scope`]   | scope grammar and nesting                                                |
//! | [`clock`]   | Unix-millisecond timestamps                                              |
//! | [`mint`]    | issuing new tokens (secret + record)                                     |
//! | [`verify`]  | parse, look up and check a presented token                               |
//! | [`path`]    | request path normalization (once per request, shared by rules and upstream) |
//! | [`routes`]  | ordered route rules: public paths, required roles and scopes             |
//! | [`store`]   | the `TokenStore` trait and its embedded (redb) and Redis backends        |

#![forbid(unsafe_code)]

pub mod app;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod digest;
pub mod logging;
pub mod metrics;
pub mod mint;
pub mod model;
pub mod path;
pub mod recorder;
pub mod routes;
pub mod scope;
pub mod shutdown;
pub mod store;
pub mod tls;
pub mod token;
pub mod verify;
