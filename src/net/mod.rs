//! Listeners: serving HTTP/1.1 and HTTP/2 (ALPN over TLS, or h2c with prior knowledge) on a
//! `TcpListener` that is passed in, with connection limits, per-connection deadlines and a
//! graceful drain ([`server`]), and rustls configurations from PEM files ([`tls`]).
//!
//! May use: nothing else in the crate (it is handed what it serves).

pub mod json;
pub mod server;
pub mod tls;
