//! `RouteTable::new` on fuzzed rules (roles `viewer`, `developer`, `admin`) and
//! `RouteTable::resolve` on normalized request paths, checked against a reference built from
//! one-rule tables: rule `i` "matches exactly" when a table holding only rule `i` finds the
//! request; it "matches case-insensitively" when a table holding only rule `i` with its path
//! ASCII-lowercased finds the lowercased request (`%XX` digits stay uppercase on both sides).
//!
//! Invariants:
//! - `find` returns the first rule that matches exactly;
//! - `is_public()` holds exactly when that first exact match is public and no protected rule
//!   matches only case-insensitively (so a protected rule that matches the path in any letter
//!   case makes it non-public, unless an earlier public rule matches it exactly: first match
//!   wins, as configured);
//! - `permits` with no roles and no scopes fails exactly when the first exact match or a
//!   protected rule matching only case-insensitively demands a role or scope; with every role
//!   and scope it always passes;
//! - letter case never lowers the bar: when the all-lowercase variant of a path needs a rule's
//!   roles or scopes, the path needs them too, unless that rule matches the path itself exactly
//!   and an earlier rule matches it first (the configured first-match-wins order);
//! - nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::policy::path::{normalize, rule_path};
use tokengate::policy::routes::{RouteTable, RuleSpec};
use tokengate::policy::scope::Scope;

const ROLES: &[&str] = &["viewer", "developer", "admin"];
const SCOPES: &[&str] = &["env:prod", "account", "deployment:api@prod"];

/// The input, one item a line:
/// `rule PATH [public] [methods=GET,POST] [roles=admin,viewer] [scopes=env:prod]` or
/// `req METHOD PATH` (the path is normalized and checked for parameters as the proxy does).
fn parse(text: &str) -> (Vec<RuleSpec>, Vec<(&str, &str)>) {
    let (mut rules, mut requests) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let mut words = line.split(' ');
        match words.next() {
            Some("rule") if rules.len() < 8 => {
                let mut spec = RuleSpec { path: words.next().unwrap_or_default().to_string(), ..Default::default() };
                for w in words {
                    let list = |v: &str| v.split(',').map(str::to_string).collect::<Vec<_>>();
                    if w == "public" {
                        spec.public = true;
                    } else if let Some(v) = w.strip_prefix("methods=") {
                        spec.methods = Some(if v.is_empty() { vec![] } else { list(v) });
                    } else if let Some(v) = w.strip_prefix("roles=") {
                        spec.roles = list(v);
                    } else if let Some(v) = w.strip_prefix("scopes=") {
                        spec.scopes = list(v);
                    }
                }
                rules.push(spec);
            }
            Some("req") if requests.len() < 16 => {
                if let (Some(m), Some(p)) = (words.next(), words.next()) {
                    requests.push((m, p));
                }
            }
            _ => {}
        }
    }
    (rules, requests)
}

/// ASCII-lowercase, keeping the two hex digits after each `%`.
fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut keep = 0;
    for c in s.chars() {
        if c == '%' {
            keep = 2;
            out.push(c);
        } else if keep > 0 {
            keep -= 1;
            out.push(c);
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

fn demands(spec: &RuleSpec) -> bool {
    !spec.public && (!spec.roles.is_empty() || !spec.scopes.is_empty())
}

struct Reference {
    exact: Vec<RouteTable>,
    folded: Vec<RouteTable>,
}

impl Reference {
    fn new(specs: &[RuleSpec], roles: &[String]) -> Self {
        let one = |s: RuleSpec| RouteTable::new(&[s], roles).expect("a rule valid in a table is valid alone");
        Self {
            exact: specs.iter().map(|s| one(s.clone())).collect(),
            folded: specs.iter().map(|s| one(RuleSpec { path: fold(&s.path), ..s.clone() })).collect(),
        }
    }
    fn exact(&self, i: usize, method: &str, path: &str) -> bool {
        self.exact[i].find(method, path).is_some()
    }
    fn folded(&self, i: usize, method: &str, path: &str) -> bool {
        self.folded[i].find(method, &fold(path)).is_some()
    }
    fn first_exact(&self, method: &str, path: &str) -> Option<usize> {
        (0..self.exact.len()).find(|&i| self.exact(i, method, path))
    }
    /// The rules whose requirements apply: the first exact match and every protected rule that
    /// matches only case-insensitively.
    fn applied(&self, specs: &[RuleSpec], method: &str, path: &str) -> Vec<usize> {
        let first = self.first_exact(method, path);
        (0..specs.len())
            .filter(|&i| {
                Some(i) == first || (!specs[i].public && self.folded(i, method, path) && !self.exact(i, method, path))
            })
            .collect()
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (specs, requests) = parse(text);
    let known: Vec<String> = ROLES.iter().map(|r| r.to_string()).collect();
    let Ok(table) = RouteTable::new(&specs, &known) else { return };
    let reference = Reference::new(&specs, &known);
    let all_scopes: Vec<Scope> = SCOPES.iter().map(|s| s.parse().unwrap()).collect();

    for (method, raw) in requests {
        let Ok(normalized) = normalize(raw) else { continue };
        let Ok(path) = rule_path(&normalized, false) else { continue };
        let path: &str = &path;

        let first = reference.first_exact(method, path);
        assert_eq!(
            table.find(method, path).map(|r| r.path()),
            first.map(|i| specs[i].path.as_str()),
            "{method} {path}"
        );

        let route = table.resolve(method, path);
        let applied = reference.applied(&specs, method, path);
        let want_public = applied.iter().all(|&i| specs[i].public) && first.is_some_and(|i| specs[i].public);
        assert_eq!(route.is_public(), want_public, "{method} {path}: {specs:?}");
        if route.is_public() {
            for i in (0..specs.len()).filter(|&i| !specs[i].public && reference.folded(i, method, path)) {
                assert!(
                    reference.exact(i, method, path) && first.is_some_and(|f| f < i),
                    "{method} {path} is public though protected rule {i} matches it: {specs:?}"
                );
            }
        }
        let want_refused = applied.iter().any(|&i| demands(&specs[i]));
        assert_eq!(route.permits(&[], &[]).is_err(), want_refused, "{method} {path}: {specs:?}");
        assert_eq!(route.permits(ROLES, &all_scopes), Ok(()), "{method} {path}");

        // Letter case never lowers the bar.
        let lower = fold(path);
        let lower_route = table.resolve(method, &lower);
        if lower_route.permits(&[], &[]).is_err() && route.permits(&[], &[]).is_ok() {
            for i in reference.applied(&specs, method, &lower).into_iter().filter(|&i| demands(&specs[i])) {
                assert!(
                    reference.exact(i, method, path) && first.is_some_and(|f| f < i),
                    "{method} {lower} needs rule {i} but {path} does not: {specs:?}"
                );
            }
        }
    }
});
