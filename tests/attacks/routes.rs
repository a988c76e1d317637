//! Walking around route rules (issue 9, finding 2). The principle: ambiguity never lowers the
//! bar. Many upstreams (Tomcat, Spring, IIS, ASP.NET, Express) treat `/admin;x`, `/ADMIN` or a
//! lowercase `delete` as the protected resource, so tokengate refuses them or applies the
//! strictest rule they could match, the same over HTTP/1.1 and HTTP/2.

use tokengate::token::{Principal, TokenKind};

use crate::client::{BOTH, request};
use crate::support::gate::{Gate, bearer, embedded_config};
use crate::support::upstream::Upstream;
use crate::support::{minter, new_token};
use tokengate::store::Issue as _;

const ROUTES: &str = "
routes:
  - path: /public
    public: true
  - path: /admin
    roles: [admin]
  - path: /items
    methods: [DELETE]
    roles: [admin]
";

struct Setup {
    _dir: tempfile::TempDir,
    _upstream: Upstream,
    gate: Gate,
    viewer: String,
    admin: String,
}

async fn setup(extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start().await;
    let gate = Gate::start(&embedded_config(&upstream.url(), dir.path(), &format!("{ROUTES}{extra}"))).await;
    let alice = Principal {
        id: "alice".into(),
        display_name: "Alice".into(),
        org: None,
        roles: vec!["viewer".into(), "admin".into()],
        limits: Default::default(),
        ..Default::default()
    };
    gate.store.put_principal(&alice).await.unwrap();
    let (viewer, _) = minter().issue(gate.store.as_ref(), &new_token(TokenKind::Personal, "v", "alice")).await.unwrap();
    let mut req = new_token(TokenKind::Personal, "a", "alice");
    req.roles = vec!["admin".into()];
    let (admin, _) = minter().issue(gate.store.as_ref(), &req).await.unwrap();
    Setup { _dir: dir, _upstream: upstream, gate, viewer: bearer(viewer.expose()), admin: bearer(admin.expose()) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_paths_and_methods_never_lower_the_bar() {
    let s = setup("").await;
    // (method, target, credential, status, error code)
    let cases: &[(&str, &str, Option<&str>, u16, &str)] = &[
        // Path parameters are refused, raw or encoded.
        ("GET", "/public/..;/admin", None, 400, "invalid_request"),
        ("GET", "/admin;x", Some(&s.viewer), 400, "invalid_request"),
        ("GET", "/admin%3Bx", Some(&s.viewer), 400, "invalid_request"),
        ("GET", "/public;jsessionid=1/x", None, 400, "invalid_request"),
        // A case variant of a protected path gets that rule's requirements.
        ("GET", "/ADMIN", Some(&s.viewer), 403, "insufficient_scope"),
        ("GET", "/Admin/users", Some(&s.viewer), 403, "insufficient_scope"),
        ("GET", "/%41dmin", Some(&s.viewer), 403, "insufficient_scope"),
        ("GET", "/ADMIN", Some(&s.admin), 200, ""),
        // Public rules match exactly: a case variant needs a token.
        ("GET", "/PUBLIC/x", None, 401, "missing_credentials"),
        ("GET", "/public/x", None, 200, ""),
        // Methods are case-sensitive: a lowercase letter is refused.
        ("delete", "/items", Some(&s.viewer), 400, "invalid_request"),
        ("Get", "/x", Some(&s.viewer), 400, "invalid_request"),
        ("DELETE", "/items", Some(&s.viewer), 403, "insufficient_scope"),
        ("DELETE", "/ITEMS", Some(&s.viewer), 403, "insufficient_scope"),
        ("DELETE", "/items", Some(&s.admin), 200, ""),
    ];
    for proto in BOTH {
        for (method, target, credential, status, code) in cases {
            let headers: Vec<(&str, &str)> = credential.iter().map(|c| ("authorization", *c)).collect();
            let a = request(proto, s.gate.addr, None, method, target, &headers).await;
            assert_eq!(a.status.as_u16(), *status, "{proto:?} {method} {target}: {:?}", a.body);
            if !code.is_empty() {
                assert_eq!(a.json()["error"], *code, "{proto:?} {method} {target}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_path_parameters_are_ignored_by_the_rules_but_reach_the_upstream() {
    let s = setup("proxy:\n  allow_path_parameters: true\n").await;
    for proto in BOTH {
        let a = request(proto, s.gate.addr, None, "GET", "/admin;x", &[("authorization", &s.viewer)]).await;
        assert_eq!(a.status, 403, "{proto:?}: rules see /admin");
        let a = request(proto, s.gate.addr, None, "GET", "/public/..;/admin", &[]).await;
        assert_eq!(a.status, 401, "{proto:?}: rules see /admin, not /public");
        let a = request(proto, s.gate.addr, None, "GET", "/admin;jsessionid=1/x", &[("authorization", &s.admin)]).await;
        assert_eq!(a.status, 200, "{proto:?}");
        assert_eq!(a.json()["target"], "/admin;jsessionid=1/x", "the upstream gets the path as sent");
    }
}
