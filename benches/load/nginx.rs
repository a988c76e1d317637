//! nginx configurations: the fixed-response upstream and the reference proxy that each
//! tokengate scenario is compared with.

use std::net::SocketAddr;
use std::path::Path;

/// The parts every configuration shares: one worker, no access log, everything under `dir`.
fn preamble(dir: &Path) -> String {
    let d = dir.display();
    // The `user` directive only matters (and is only allowed quietly) when started as root.
    let user = if is_root() { "user root root;\n" } else { "" };
    format!(
        "{user}worker_processes 1;\n\
         daemon off;\n\
         pid {d}/nginx.pid;\n\
         error_log stderr warn;\n\
         events {{ worker_connections 4096; }}\n"
    )
}

fn temp_paths(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "  access_log off;\n\
         \x20 client_body_temp_path {d}/body;\n\
         \x20 proxy_temp_path {d}/proxy;\n\
         \x20 fastcgi_temp_path {d}/fastcgi;\n\
         \x20 uwsgi_temp_path {d}/uwsgi;\n\
         \x20 scgi_temp_path {d}/scgi;\n"
    )
}

/// The upstream: a fixed 200 for every path, and 204 on `/auth` (the `auth_request` target).
pub fn upstream(dir: &Path, listen: SocketAddr) -> String {
    format!(
        "{}http {{\n{}\
         \x20 keepalive_requests 1000000;\n\
         \x20 server {{\n\
         \x20   listen {listen} backlog=4096;\n\
         \x20   location = /auth {{ return 204; }}\n\
         \x20   location / {{ default_type text/plain; return 200 \"ok\\n\"; }}\n\
         \x20 }}\n\
         }}\n",
        preamble(dir),
        temp_paths(dir)
    )
}

/// The reference proxy. Each location is the nginx counterpart of one tokengate scenario:
///
/// - `/public/`: plain `proxy_pass`;
/// - `/api/`: the bearer token checked against a static `map` (401 when it is not the one);
/// - `/authreq/`: `auth_request` to the upstream's `/auth` before proxying.
pub fn reference(dir: &Path, listen: SocketAddr, upstream: SocketAddr, tokens: &[&str]) -> String {
    let entries: String = tokens.iter().map(|t| format!("\"Bearer {t}\" 1; ")).collect();
    let proxy = "proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\";";
    format!(
        "{}http {{\n{}\
         \x20 keepalive_requests 1000000;\n\
         \x20 upstream backend {{ server {upstream}; keepalive 128; keepalive_requests 1000000; }}\n\
         \x20 map_hash_bucket_size 128;
         \x20 map $http_authorization $bearer_ok {{ {entries}default 0; }}\n\
         \x20 server {{\n\
         \x20   listen {listen} backlog=4096;\n\
         \x20   location /public/ {{ {proxy} }}\n\
         \x20   location /api/ {{ if ($bearer_ok = 0) {{ return 401; }} {proxy} }}\n\
         \x20   location /authreq/ {{ auth_request /_auth; {proxy} }}\n\
         \x20   location = /_auth {{\n\
         \x20     internal;\n\
         \x20     proxy_pass http://backend/auth;\n\
         \x20     proxy_pass_request_body off;\n\
         \x20     proxy_set_header Content-Length \"\";\n\
         \x20     proxy_http_version 1.1;\n\
         \x20     proxy_set_header Connection \"\";\n\
         \x20   }}\n\
         \x20 }}\n\
         }}\n",
        preamble(dir),
        temp_paths(dir)
    )
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next().map(|uid| uid == "0"))
        .unwrap_or(false)
}
