//! Route rules: which requests are public and which roles or scopes the rest need.
//!
//! Rules are checked in order against the *normalized* path ([`crate::policy::path`]); the first match
//! wins and no match means "any valid token". A rule's `path` is either
//!
//! - a prefix on segment boundaries: `/api` matches `/api`, `/api/` and `/api/x`, not `/apix`;
//! - or a pattern, when any segment is `*` (exactly one segment) or a final `**` (any number of
//!   segments, including none): `/v1/orgs/*/billing/**`.
//!
//! `methods` (optional) restricts a rule to some methods; `GET` also covers `HEAD`. A matching
//! rule either is `public` (no token needed) or requires *any one* of its `roles` and *every* one
//! of its `scopes` (each covered by one of the token's scopes, see [`Scope::covers`]).
//!
//! The table is validated when config loads: bad paths, unknown roles, bad scopes and rules that
//! an earlier rule makes unreachable are errors.

use thiserror::Error;

use crate::policy::scope::Scope;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One,
    Rest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathMatcher {
    /// Normalized, without a trailing slash (except the root `/`).
    Prefix(String),
    Pattern(Vec<Segment>),
}

impl PathMatcher {
    /// Whether `path` matches; with `fold`, ASCII letter case is ignored.
    fn matches(&self, path: &str, fold: bool) -> bool {
        match self {
            Self::Prefix(p) => under_cased(path, p, fold),
            Self::Pattern(segments) => {
                let mut parts = path.split('/').skip(1);
                for seg in segments {
                    match seg {
                        Segment::Rest => return true,
                        Segment::One => match parts.next() {
                            Some(s) if !s.is_empty() => {}
                            _ => return false,
                        },
                        Segment::Literal(l) => match parts.next() {
                            Some(s) if s == l || (fold && s.eq_ignore_ascii_case(l)) => {}
                            _ => return false,
                        },
                    }
                }
                // Allow one trailing slash after the last segment.
                matches!((parts.next(), parts.next()), (None, _) | (Some(""), None))
            }
        }
    }

    fn has_upper(&self) -> bool {
        match self {
            Self::Prefix(p) => p.bytes().any(|b| b.is_ascii_uppercase()),
            Self::Pattern(segments) => {
                segments.iter().any(|s| matches!(s, Segment::Literal(l) if l.bytes().any(|b| b.is_ascii_uppercase())))
            }
        }
    }

    /// The literal path every match starts with (for shadowing checks).
    fn literal_lead(&self) -> String {
        match self {
            Self::Prefix(p) => p.clone(),
            Self::Pattern(segments) => {
                let lits: Vec<&str> = segments
                    .iter()
                    .map_while(|s| match s {
                        Segment::Literal(l) => Some(l.as_str()),
                        _ => None,
                    })
                    .collect();
                format!("/{}", lits.join("/"))
            }
        }
    }
}

/// Whether `path` is `prefix` or below it on a segment boundary.
fn under(path: &str, prefix: &str) -> bool {
    under_cased(path, prefix, false)
}

/// [`under`], ignoring ASCII letter case with `fold`.
fn under_cased(path: &str, prefix: &str, fold: bool) -> bool {
    if prefix == "/" {
        return true;
    }
    let (path, prefix) = (path.as_bytes(), prefix.as_bytes());
    path.len() >= prefix.len()
        && if fold { path[..prefix.len()].eq_ignore_ascii_case(prefix) } else { path[..prefix.len()] == *prefix }
        && (path.len() == prefix.len() || path[prefix.len()] == b'/')
}

/// What a matching rule demands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No token needed.
    Public,
    /// A valid token holding any one of `roles` (when not empty) and covering every one of
    /// `scopes`.
    Token { roles: Vec<String>, scopes: Vec<Scope> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    path_text: String,
    path: PathMatcher,
    methods: Option<Vec<String>>,
    pub access: Access,
}

impl Rule {
    fn matches(&self, method: &str, path: &str, fold: bool) -> bool {
        let method_ok =
            self.methods.as_ref().is_none_or(|ms| ms.iter().any(|m| m == method || (m == "GET" && method == "HEAD")));
        method_ok && self.path.matches(path, fold)
    }

    fn is_public(&self) -> bool {
        self.access == Access::Public
    }

    /// Whether this protected rule matches only when letter case is ignored.
    fn matches_folded_only(&self, method: &str, path: &str) -> bool {
        !self.is_public() && self.matches(method, path, true) && !self.matches(method, path, false)
    }

    /// Whether a token with these effective roles and scopes may pass this rule.
    pub fn permits(&self, roles: &[&str], scopes: &[Scope]) -> bool {
        match &self.access {
            Access::Public => true,
            Access::Token { roles: need_roles, scopes: need_scopes } => {
                (need_roles.is_empty() || need_roles.iter().any(|r| roles.contains(&r.as_str())))
                    && need_scopes.iter().all(|need| scopes.iter().any(|have| have.covers(need)))
            }
        }
    }

    pub fn path(&self) -> &str {
        &self.path_text
    }

    /// Whether every request this rule matches is matched by `earlier` first.
    fn shadowed_by(&self, earlier: &Rule) -> bool {
        let methods_covered = match (&earlier.methods, &self.methods) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => b.iter().all(|m| a.contains(m) || (m == "HEAD" && a.iter().any(|x| x == "GET"))),
        };
        let path_covered = match &earlier.path {
            PathMatcher::Prefix(p) => under(&self.path.literal_lead(), p),
            PathMatcher::Pattern(_) => earlier.path == self.path,
        };
        methods_covered && path_covered
    }
}

/// A route rule as written in config, before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSpec {
    pub path: String,
    pub methods: Option<Vec<String>>,
    pub public: bool,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
}

/// A rule that cannot be used; `field` is relative to the rule (`path`, `methods[1]`, ...).
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{problem}")]
pub struct RuleError {
    pub index: usize,
    pub field: String,
    pub problem: String,
}

/// The ordered, validated rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    rules: Vec<Rule>,
    /// Whether any rule's literal has an uppercase letter (else a lowercase path can only
    /// match a rule exactly, and the case-folded pass is skipped).
    has_upper: bool,
}

/// What one request must satisfy: see [`RouteTable::resolve`].
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    rules: &'a [Rule],
    method: &'a str,
    path: &'a str,
    /// The first rule matching exactly.
    exact: Option<&'a Rule>,
    /// Whether some protected rule matches only when letter case is ignored.
    folded: bool,
}

impl<'a> Route<'a> {
    /// Whether no token is needed: the first exact match is public and no protected rule
    /// matches with letter case ignored.
    pub fn is_public(&self) -> bool {
        !self.folded && self.exact.is_some_and(Rule::is_public)
    }

    /// Whether a token with these effective roles and scopes may pass; `Err` names the first
    /// rule that refuses it.
    pub fn permits(&self, roles: &[&str], scopes: &[Scope]) -> Result<(), &'a str> {
        if let Some(rule) = self.exact
            && !rule.permits(roles, scopes)
        {
            return Err(rule.path());
        }
        if self.folded {
            for rule in self.rules.iter().filter(|r| r.matches_folded_only(self.method, self.path)) {
                if !rule.permits(roles, scopes) {
                    return Err(rule.path());
                }
            }
        }
        Ok(())
    }
}

impl RouteTable {
    /// Validates `specs` against the configured `known_roles`.
    pub fn new(specs: &[RuleSpec], known_roles: &[String]) -> Result<Self, RuleError> {
        let mut rules: Vec<Rule> = Vec::with_capacity(specs.len());
        for (index, spec) in specs.iter().enumerate() {
            let err = |field: &str, problem: String| RuleError { index, field: field.to_string(), problem };
            let rule = Rule {
                path_text: spec.path.clone(),
                path: parse_path(&spec.path).map_err(|p| err("path", p))?,
                methods: parse_methods(spec.methods.as_deref()).map_err(|(i, p)| err(&format!("methods[{i}]"), p))?,
                access: parse_access(spec, known_roles).map_err(|(f, p)| err(&f, p))?,
            };
            if let Some(j) = rules.iter().position(|earlier| rule.shadowed_by(earlier)) {
                return Err(err(
                    "path",
                    format!("can never match: routes[{j}] ({:?}) matches every request it would", rules[j].path_text),
                ));
            }
            rules.push(rule);
        }
        let has_upper = rules.iter().any(|r| r.path.has_upper());
        Ok(Self { rules, has_upper })
    }

    /// The first rule matching a request exactly, if any.
    pub fn find(&self, method: &str, normalized_path: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(method, normalized_path, false))
    }

    /// What a request must satisfy. Ambiguity never lowers the bar: many upstreams (IIS,
    /// ASP.NET, Spring with case-insensitive matching, Express by default) treat `/ADMIN` as
    /// `/admin`, so besides the first exact match, every protected rule that matches when ASCII
    /// letter case is ignored applies too; public rules only ever match exactly.
    pub fn resolve<'a>(&'a self, method: &'a str, normalized_path: &'a str) -> Route<'a> {
        let exact = self.find(method, normalized_path);
        let may_fold = self.has_upper || normalized_path.bytes().any(|b| b.is_ascii_uppercase());
        let folded = may_fold && self.rules.iter().any(|r| r.matches_folded_only(method, normalized_path));
        Route { rules: &self.rules, method, path: normalized_path, exact, folded }
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Every scope some rule requires, sorted and without repeats (what a token may usefully
    /// carry, offered by the Tokens page to operators).
    pub fn scopes(&self) -> Vec<Scope> {
        let mut all: Vec<Scope> = self
            .rules
            .iter()
            .filter_map(|r| match &r.access {
                Access::Token { scopes, .. } => Some(scopes.iter().cloned()),
                Access::Public => None,
            })
            .flatten()
            .collect();
        all.sort();
        all.dedup();
        all
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

fn parse_path(path: &str) -> Result<PathMatcher, String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} must start with '/'"));
    }
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let is_pattern = segments.iter().any(|s| *s == "*" || *s == "**");
    if segments.iter().any(|s| s.contains('*') && *s != "*" && *s != "**") {
        return Err(format!("{path:?}: '*' and '**' must be whole segments"));
    }
    let literal = path.replace("**", "x").replace('*', "x");
    match crate::policy::path::normalize(&literal) {
        Ok(n) if n == literal || (!is_pattern && n.trim_end_matches('/') == literal.trim_end_matches('/')) => {}
        _ => {
            return Err(format!(
                "{path:?} is not a normalized path (no '//', '.', '..', '\\' or %-encoded unreserved characters), so no request can match it"
            ));
        }
    }
    if !is_pattern {
        let trimmed = path.trim_end_matches('/');
        return Ok(PathMatcher::Prefix(if trimmed.is_empty() { "/".to_string() } else { trimmed.to_string() }));
    }
    let segments: Vec<&str> = segments.into_iter().filter(|s| !s.is_empty()).collect();
    if let Some(pos) = segments.iter().position(|s| *s == "**")
        && pos + 1 != segments.len()
    {
        return Err(format!("{path:?}: '**' is only allowed as the last segment"));
    }
    Ok(PathMatcher::Pattern(
        segments
            .into_iter()
            .map(|s| match s {
                "*" => Segment::One,
                "**" => Segment::Rest,
                lit => Segment::Literal(lit.to_string()),
            })
            .collect(),
    ))
}

fn parse_methods(methods: Option<&[String]>) -> Result<Option<Vec<String>>, (usize, String)> {
    let Some(methods) = methods else { return Ok(None) };
    if methods.is_empty() {
        return Err((0, "an empty method list can never match; omit `methods` to match every method".into()));
    }
    let mut out: Vec<String> = Vec::with_capacity(methods.len());
    for (i, m) in methods.iter().enumerate() {
        let ok = !m.is_empty() && m.len() <= 20 && m.bytes().all(|b| b.is_ascii_uppercase() || b == b'-');
        if !ok {
            return Err((i, format!("invalid method {m:?}: use uppercase names such as GET, POST")));
        }
        if out.contains(m) {
            return Err((i, format!("duplicate method {m:?}")));
        }
        out.push(m.clone());
    }
    Ok(Some(out))
}

fn parse_access(spec: &RuleSpec, known_roles: &[String]) -> Result<Access, (String, String)> {
    if spec.public {
        if !spec.roles.is_empty() || !spec.scopes.is_empty() {
            return Err(("public".into(), "a public rule cannot also require roles or scopes".into()));
        }
        return Ok(Access::Public);
    }
    for (i, r) in spec.roles.iter().enumerate() {
        if !known_roles.contains(r) {
            return Err((
                format!("roles[{i}]"),
                format!("unknown role {r:?} (configured roles: {})", known_roles.join(", ")),
            ));
        }
    }
    let scopes = spec
        .scopes
        .iter()
        .enumerate()
        .map(|(i, s)| s.parse::<Scope>().map_err(|e| (format!("scopes[{i}]"), e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Access::Token { roles: spec.roles.clone(), scopes })
}

#[cfg(test)]
mod tests;
