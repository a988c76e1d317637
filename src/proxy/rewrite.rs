//! Rewriting an admitted request for the upstream: hop-by-hop headers (and every header named
//! in `Connection`) removed, every identity-looking header and (unless configured otherwise)
//! `Authorization` removed, then the identity injected, `X-Forwarded-*` set, and the target
//! pointed at the upstream. The use is noted for the last-used recorder (never waits).

use http::header::{AUTHORIZATION, CONNECTION, HOST, HeaderValue, UPGRADE};
use http::request::Parts;
use http::{Uri, Version};

use super::Inner;
use super::admit::Admission;
use super::failure::Failure;
use super::headers::{self, Identity};
use crate::clock::Timestamp;
use crate::net::server::ConnInfo;

impl Inner {
    /// Rewrites `parts` in place; returns the upgrade protocol when the client asked for one.
    pub(super) fn rewrite(
        &self,
        parts: &mut Parts,
        admission: Admission,
        conn: ConnInfo,
    ) -> Result<Option<HeaderValue>, Failure> {
        let host = parts
            .headers
            .get(HOST)
            .cloned()
            .or_else(|| parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()));

        let headers = &mut parts.headers;
        let upgrade = headers::upgrade_request(headers);
        headers::remove_hop_by_hop(headers);
        self.identity.strip(headers);
        if !self.config.forward_authorization {
            headers.remove(AUTHORIZATION);
        }
        if let Some(a) = &admission.caller {
            let roles = a.roles();
            let id = Identity {
                subject: a.subject(),
                token_id: &a.token.id,
                kind: a.token.kind,
                org: a.org(),
                roles: &roles,
                scopes: &a.token.scopes,
            };
            self.identity.inject(headers, &id);
            self.recorder.record(a.token.id, Timestamp::now(), Some(admission.client));
        }
        if let Some(h) = &host
            && !headers.contains_key(HOST)
        {
            headers.insert(HOST, h.clone());
        }
        let proto = if conn.tls { "https" } else { "http" };
        headers::forwarded(headers, self.config.x_forwarded, conn.peer.ip(), proto, host);
        if let Some(protocol) = &upgrade {
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(UPGRADE, protocol.clone());
        }

        parts.uri = Uri::builder()
            .scheme(self.upstream.scheme.clone())
            .authority(self.upstream.authority.clone())
            .path_and_query(admission.target)
            .build()
            .map_err(|_| Failure::InvalidRequest("the request target cannot be forwarded"))?;
        parts.version = Version::HTTP_11;
        Ok(upgrade)
    }
}
