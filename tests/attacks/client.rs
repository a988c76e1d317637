//! Raw clients for attack tests: HTTP/1.1 or HTTP/2 (prior knowledge) over one connection,
//! optionally from a chosen loopback source address, with any method and target bytes.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpSocket;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    H1,
    H2,
}

pub const BOTH: [Proto; 2] = [Proto::H1, Proto::H2];

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// Sends one request on a new connection from `from` (a loopback address; `None`: any).
pub async fn request(
    proto: Proto,
    to: SocketAddr,
    from: Option<IpAddr>,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(ip) = from {
        socket.bind(SocketAddr::new(ip, 0)).unwrap();
    }
    let stream = TokioIo::new(socket.connect(to).await.unwrap());
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(format!("http://{to}{target}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    for (k, v) in headers {
        req.headers_mut().append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    let response = match proto {
        Proto::H1 => {
            *req.uri_mut() = target.parse().unwrap();
            req.headers_mut().insert(http::header::HOST, to.to_string().parse().unwrap());
            let (mut send, conn) = hyper::client::conn::http1::handshake(stream).await.unwrap();
            tokio::spawn(conn);
            send.send_request(req).await.unwrap()
        }
        Proto::H2 => {
            let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), stream).await.unwrap();
            tokio::spawn(conn);
            send.send_request(req).await.unwrap()
        }
    };
    let (parts, body) = response.into_parts();
    Answer { status: parts.status, headers: parts.headers, body: body.collect().await.unwrap().to_bytes() }
}

/// The value of one metric line (`name{labels}`) in a Prometheus text page, 0 when absent.
pub fn metric(page: &str, series: &str) -> f64 {
    page.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}

/// The admin port's `/metrics` page.
pub async fn metrics(admin: SocketAddr) -> String {
    let a = request(Proto::H1, admin, None, "GET", "/metrics", &[]).await;
    assert_eq!(a.status, 200);
    String::from_utf8(a.body.to_vec()).unwrap()
}
