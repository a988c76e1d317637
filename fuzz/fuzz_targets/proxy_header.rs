//! `net::proxy_protocol::parse` on any bytes (what a load balancer, or anyone reaching the
//! port, puts at the front of a connection).
//!
//! Invariants: never panics; a header's length is within the bytes given and at most
//! `MAX_HEADER`; parsing the header alone gives the same answer (nothing after it is needed);
//! every prefix of a complete header is "incomplete" (a header split across TCP segments is
//! waited for, never refused); and once `MAX_HEADER` bytes are there the answer is never
//! "incomplete".
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::net::proxy_protocol::{MAX_HEADER, Parsed, parse};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Parsed::Header { len, source } => {
            assert!(len <= data.len() && len <= MAX_HEADER, "length {len} of {}", data.len());
            assert_eq!(parse(&data[..len]), Parsed::Header { len, source }, "the header alone reads the same");
            for cut in 0..len {
                assert_eq!(parse(&data[..cut]), Parsed::Incomplete, "the first {cut} bytes of a {len}-byte header");
            }
        }
        Parsed::Incomplete => assert!(data.len() < MAX_HEADER),
        Parsed::Invalid(_) => {}
    }
});
