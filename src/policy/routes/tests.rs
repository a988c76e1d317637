//! Route matching, rule validation and the letter-case rule.
use super::*;

fn roles() -> Vec<String> {
    ["viewer", "developer", "admin"].iter().map(|s| s.to_string()).collect()
}

fn spec(path: &str) -> RuleSpec {
    RuleSpec { path: path.into(), ..Default::default() }
}

fn table(specs: &[RuleSpec]) -> RouteTable {
    RouteTable::new(specs, &roles()).unwrap()
}

#[test]
fn prefixes_match_on_segment_boundaries() {
    let t = table(&[RuleSpec { public: true, ..spec("/public") }]);
    for p in ["/public", "/public/", "/public/a/b"] {
        assert!(t.find("GET", p).is_some(), "{p}");
    }
    for p in ["/publicity", "/", "/admin", "/pub"] {
        assert!(t.find("GET", p).is_none(), "{p}");
    }
}

#[test]
fn patterns_match_whole_segments() {
    let t = table(&[spec("/v1/orgs/*/billing/**"), spec("/v2/*/items")]);
    for p in
        ["/v1/orgs/acme/billing", "/v1/orgs/acme/billing/", "/v1/orgs/acme/billing/x/y", "/v2/a/items", "/v2/a/items/"]
    {
        assert!(t.find("GET", p).is_some(), "{p}");
    }
    for p in ["/v1/orgs/billing", "/v1/orgs//billing", "/v1/orgs/a/b/billing", "/v2/a/items/x", "/v2/items"] {
        assert!(t.find("GET", p).is_none(), "{p}");
    }
}

#[test]
fn first_match_wins_and_methods_restrict() {
    let t = table(&[
        RuleSpec { methods: Some(vec!["GET".into()]), public: true, ..spec("/docs") },
        RuleSpec { roles: vec!["admin".into()], ..spec("/docs") },
    ]);
    assert_eq!(t.find("GET", "/docs/a").unwrap().access, Access::Public);
    assert_eq!(t.find("HEAD", "/docs/a").unwrap().access, Access::Public, "GET covers HEAD");
    assert!(matches!(t.find("POST", "/docs/a").unwrap().access, Access::Token { .. }));
}

#[test]
fn letter_case_never_lowers_the_bar() {
    let admin = RuleSpec { roles: vec!["admin".into()], ..spec("/admin") };
    let t = table(&[RuleSpec { public: true, ..spec("/public") }, admin, spec("/v1/*/Billing/**")]);
    let (viewer, admins): (&[&str], &[&str]) = (&["viewer"], &["admin"]);
    // Exact matches behave as before.
    assert!(t.resolve("GET", "/public/x").is_public());
    assert_eq!(t.resolve("GET", "/admin").permits(viewer, &[]), Err("/admin"));
    // Case variants of a protected rule get its requirements.
    for p in ["/ADMIN", "/Admin/x", "/aDmIn/"] {
        let route = t.resolve("GET", p);
        assert!(!route.is_public(), "{p}");
        assert_eq!(route.permits(viewer, &[]), Err("/admin"), "{p}");
        assert_eq!(route.permits(admins, &[]), Ok(()), "{p}");
    }
    // Public rules match exactly only: a case variant needs a token.
    assert!(!t.resolve("GET", "/PUBLIC/x").is_public());
    assert_eq!(t.resolve("GET", "/PUBLIC/x").permits(viewer, &[]), Ok(()));
    // Rules written with capitals fold too.
    assert!(t.resolve("GET", "/v1/a/billing/x").folded);
    assert!(!t.resolve("GET", "/v1/a/other").folded);
}

#[test]
fn roles_are_any_of_and_scopes_all_of() {
    let t = table(&[RuleSpec {
        roles: vec!["developer".into(), "admin".into()],
        scopes: vec!["env:prod".into(), "deployment:api@prod".into()],
        ..spec("/deploy")
    }]);
    let rule = t.find("POST", "/deploy").unwrap();
    let prod: Vec<Scope> = vec!["env:prod".parse().unwrap()];
    assert!(rule.permits(&["admin"], &prod));
    assert!(rule.permits(&["viewer", "developer"], &["account".parse().unwrap()]));
    assert!(!rule.permits(&["viewer"], &prod), "no listed role");
    assert!(!rule.permits(&["admin"], &["deployment:api@prod".parse().unwrap()]), "env:prod not covered");
    assert!(!rule.permits(&["admin"], &[]));
}

#[test]
fn invalid_rules_are_refused_with_the_field() {
    let bad = |s: RuleSpec| RouteTable::new(&[s], &roles()).unwrap_err();
    assert_eq!(bad(spec("api")).field, "path");
    assert_eq!(bad(spec("/a/../b")).field, "path");
    assert_eq!(bad(spec("/a//b")).field, "path");
    assert_eq!(bad(spec("/a/%61")).field, "path");
    assert_eq!(bad(spec("/a/b*")).field, "path");
    assert_eq!(bad(spec("/a/**/b")).field, "path");
    assert_eq!(bad(RuleSpec { methods: Some(vec![]), ..spec("/a") }).field, "methods[0]");
    assert_eq!(bad(RuleSpec { methods: Some(vec!["GET".into(), "get".into()]), ..spec("/a") }).field, "methods[1]");
    assert_eq!(bad(RuleSpec { roles: vec!["root".into()], ..spec("/a") }).field, "roles[0]");
    assert_eq!(bad(RuleSpec { scopes: vec!["prod".into()], ..spec("/a") }).field, "scopes[0]");
    assert_eq!(bad(RuleSpec { public: true, roles: vec!["admin".into()], ..spec("/a") }).field, "public");
}

#[test]
fn unreachable_rules_are_refused() {
    let err = |specs: &[RuleSpec]| RouteTable::new(specs, &roles()).unwrap_err();
    let e = err(&[spec("/api"), spec("/api/v1")]);
    assert_eq!((e.index, e.field.as_str()), (1, "path"));
    assert!(e.problem.contains("routes[0]"), "{}", e.problem);
    err(&[spec("/"), spec("/anything")]);
    err(&[spec("/api"), spec("/api/*/x")]);
    err(&[spec("/v/*"), spec("/v/*")]);
    err(&[
        RuleSpec { methods: Some(vec!["GET".into()]), ..spec("/a") },
        RuleSpec { methods: Some(vec!["HEAD".into()]), ..spec("/a") },
    ]);
    // Narrower first, broader later is fine; so are disjoint method sets.
    table(&[spec("/api/v1"), spec("/api")]);
    table(&[RuleSpec { methods: Some(vec!["GET".into()]), ..spec("/a") }, spec("/a")]);
    table(&[spec("/v/*"), spec("/v/x")]);
}
