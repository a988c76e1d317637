//! What a request needs, decided without I/O: the one path normalization that rules and the
//! upstream share ([`path`]), the ordered route rules ([`routes`]), and the scope grammar and
//! its nesting ([`scope`]).
//!
//! May use: nothing else in the crate. Never imports proxy, admin, store or config types.

pub mod path;
pub mod routes;
pub mod scope;
