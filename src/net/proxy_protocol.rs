//! The PROXY protocol (HAProxy's; v1 text and v2 binary, parsed by the `ppp` crate) on the proxy
//! listener, for a load balancer that passes TCP through and tells who the client is.
//!
//! With `proxy.proxy_protocol` on, every connection must open with a header, complete within
//! `proxy.header_read_timeout`; one that does not (or sends a malformed one) is closed without
//! an answer. The header is read exactly (its length is known from its first bytes), so no byte
//! after it is consumed and no read polls. Its source address becomes
//! the connection's peer only when the connection comes from `proxy.trusted_proxies`: from
//! anywhere else the header is read and ignored, so no client can claim another address; and a
//! request on a connection whose address came from a header has its `X-Forwarded-For` ignored
//! (the balancer named the client; nobody behind it may rename it). A v2
//! `LOCAL` header (the balancer's own health check) and v1 `UNKNOWN` keep the real peer.

use std::net::SocketAddr;

use ipnet::IpNet;
use ppp::{HeaderResult, PartialResult, v1, v2};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

/// The longest header accepted: the size every receiver must handle (v2 addresses and TLVs).
pub const MAX_HEADER: usize = 536;

/// What the front of a connection holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Not enough bytes yet.
    Incomplete,
    /// Not a PROXY header, or a malformed one.
    Invalid(String),
    /// A header of `len` bytes, naming `source` as the client (`None`: keep the real peer).
    Header { len: usize, source: Option<SocketAddr> },
}

/// The longest v1 (text) header, `\r\n` included.
const V1_MAX: usize = 107;

/// Parses a header at the front of `bytes`. Pure (the fuzz target drives it).
pub fn parse(bytes: &[u8]) -> Parsed {
    // A v1 header is only judged once its line is complete: `ppp` refuses a cut-off line (a
    // port missing its last digits) rather than waiting, and a header split across TCP
    // segments must be waited for.
    let (bytes, whole_line) = if b"PROXY ".starts_with(bytes) || bytes.starts_with(b"PROXY ") {
        match bytes.windows(2).position(|w| w == b"\r\n") {
            // The line may hold no other CR or LF (`ppp` would end it at the first CR).
            Some(end) if bytes[..end].iter().any(|b| matches!(b, b'\r' | b'\n')) => {
                return Parsed::Invalid("stray CR or LF in a v1 header".into());
            }
            Some(end) if end + 2 <= V1_MAX => (&bytes[..end + 2], true),
            None if bytes.len() < V1_MAX => return Parsed::Incomplete,
            _ => return Parsed::Invalid("v1 header longer than 107 bytes".into()),
        }
    } else {
        (bytes, false)
    };
    let result = HeaderResult::parse(bytes);
    if result.is_incomplete() {
        if whole_line {
            return Parsed::Invalid("malformed v1 header".into());
        }
        return if bytes.len() >= MAX_HEADER { Parsed::Invalid("header too long".into()) } else { Parsed::Incomplete };
    }
    match result {
        HeaderResult::V1(Ok(h)) => {
            let source = match h.addresses {
                v1::Addresses::Tcp4(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
                v1::Addresses::Tcp6(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
                v1::Addresses::Unknown => None,
            };
            Parsed::Header { len: h.header.len(), source }
        }
        HeaderResult::V2(Ok(h)) => {
            let source = match (h.command, h.addresses) {
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                _ => None,
            };
            if h.len() > MAX_HEADER {
                return Parsed::Invalid("header too long".into());
            }
            Parsed::Header { len: h.len(), source }
        }
        HeaderResult::V1(Err(e)) => Parsed::Invalid(e.to_string()),
        HeaderResult::V2(Err(e)) => Parsed::Invalid(e.to_string()),
    }
}

/// Reads the header off the front of `stream`, exactly: nothing after it is consumed, and every
/// read waits for bytes (no polling). Returns the address the connection counts as and whether
/// it came from the header: the header's source when `peer` is trusted, else `peer`. The
/// caller bounds the wait.
pub async fn read(stream: &mut TcpStream, peer: SocketAddr, trusted: &[IpNet]) -> Result<(SocketAddr, bool), String> {
    let io = |e: std::io::Error| e.to_string();
    // The shortest header is v1's `PROXY UNKNOWN\r\n`, 15 bytes: read that much first.
    let mut buf = vec![0u8; 15];
    stream.read_exact(&mut buf).await.map_err(io)?;
    if buf.starts_with(&V2_SIGNATURE[..12]) {
        // v2: the fixed 16 bytes, then the length they announce.
        buf.push(stream.read_u8().await.map_err(io)?);
        let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        if 16 + len > MAX_HEADER {
            return Err("header too long".into());
        }
        let start = buf.len();
        buf.resize(16 + len, 0);
        stream.read_exact(&mut buf[start..]).await.map_err(io)?;
    } else if buf.starts_with(b"PROXY ") {
        // v1: up to the end of its line.
        while !buf.ends_with(b"\r\n") {
            if buf.len() >= V1_MAX {
                return Err("v1 header longer than 107 bytes".into());
            }
            buf.push(stream.read_u8().await.map_err(io)?);
        }
    } else {
        return Err("the connection does not open with a PROXY header".into());
    }
    match parse(&buf) {
        Parsed::Header { len, source } if len == buf.len() => {
            let believed = trusted.iter().any(|net| net.contains(&peer.ip()));
            Ok(match source {
                Some(source) if believed => (SocketAddr::new(source.ip().to_canonical(), source.port()), true),
                _ => (peer, false),
            })
        }
        Parsed::Invalid(e) => Err(e),
        _ => Err("malformed PROXY header".into()),
    }
}

/// The v2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_both_versions_parse_to_their_length_and_source() {
        let v1 = b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 8080\r\nGET / HTTP/1.1\r\n";
        assert_eq!(parse(v1), Parsed::Header { len: 43, source: Some("203.0.113.7:5555".parse().unwrap()) });
        assert_eq!(
            parse(b"PROXY TCP6 2001:db8::7 ::1 5555 8080\r\n").clone(),
            Parsed::Header { len: 38, source: Some("[2001:db8::7]:5555".parse().unwrap()) }
        );
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), Parsed::Header { len: 15, source: None });
        assert_eq!(parse(b"PROXY TCP4 203.0.113.7 10.0"), Parsed::Incomplete);
        let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        v2.extend([0x21, 0x11, 0, 12, 198, 51, 100, 9, 10, 0, 0, 1, 0x15, 0xb3, 0x1f, 0x90]);
        v2.extend(b"GET");
        assert_eq!(parse(&v2), Parsed::Header { len: 28, source: Some("198.51.100.9:5555".parse().unwrap()) });
        let mut local = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        local.extend([0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local), Parsed::Header { len: 16, source: None });
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 nonsense\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n",
            // Found by the fuzz target: `ppp` ends a line at its first CR.
            b"PROXY UNKNOWN x\n\r\r:\n\r\n",
        ] {
            assert!(matches!(parse(bad), Parsed::Invalid(_)), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(matches!(parse(&[b'P'; MAX_HEADER]), Parsed::Invalid(_)));
        // Found by the fuzz target: a complete v2 header longer than MAX_HEADER.
        let mut long = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        long.extend([0x21, 0x00, 0x03, 0x01]);
        long.resize(16 + 0x301, 0);
        assert!(matches!(parse(&long), Parsed::Invalid(_)));
    }

    /// A header split across TCP segments anywhere is waited for, never refused.
    #[test]
    fn every_prefix_of_a_header_is_incomplete() {
        let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        v2.extend([0x21, 0x11, 0, 12, 198, 51, 100, 9, 10, 0, 0, 1, 0x15, 0xb3, 0x1f, 0x90]);
        for header in [&b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 8080\r\n"[..], b"PROXY UNKNOWN\r\n", &v2] {
            for cut in 0..header.len() {
                assert_eq!(
                    parse(&header[..cut]),
                    Parsed::Incomplete,
                    "{cut} bytes of {:?}",
                    String::from_utf8_lossy(header)
                );
            }
        }
    }
}
