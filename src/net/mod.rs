//! Listeners: serving HTTP/1.1 and HTTP/2 (ALPN over TLS, or h2c with prior knowledge) on a
//! `TcpListener` that is passed in, with a graceful drain ([`server`]); each connection's
//! deadlines and the connection limit that sheds idle connections (`conn`); rustls
//! configurations from PEM files ([`tls`]); the PROXY protocol header a load balancer may put
//! in front of a connection ([`proxy_protocol`]); the one JSON response builder ([`json`]).
//!
//! May use: nothing else in the crate (it is handed what it serves).

mod conn;
pub mod json;
pub mod proxy_protocol;
pub mod server;
pub mod tls;
