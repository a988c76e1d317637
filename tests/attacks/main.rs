//! The threat model as tests: one module per attack class, each sending the attack to a real
//! tokengate over real sockets (in-process on ephemeral loopback ports, or the real binary),
//! in front of a real echo upstream, on the embedded store or a real `redis-server`.
//!
//! | module      | attack                                                                    |
//! |-------------|---------------------------------------------------------------------------|
//! | `connections` | idle and silent sockets, partial heads and prefaces, the connection limits, ambiguous framing, header counts |
//! | `routes`    | walking around route rules: path parameters, letter case, method case     |
//! | `differential` | nasty request lines: the path and method the rules saw are what the upstream got |
//! | `flood`     | random well-formed tokens to exhaust the store; a real token keeps working |
//! | `races`     | invalidations racing fetches; raced entries served stale during an outage |
//! | `redis`     | a flapping, severed or paused invalidation channel / store                |
//!
//! docs/security.md has the threat model these tests pin.

#[path = "../support/mod.rs"]
mod support;

mod client;
mod connections;
mod differential;
mod flood;
mod races;
mod redis;
mod routes;
