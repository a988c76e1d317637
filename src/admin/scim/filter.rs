//! SCIM filters (RFC 7644 §3.4.2.2) and attribute paths (§3.5.2 `path`), parsed once and
//! evaluated against a resource's JSON.
//!
//! ```text
//! filter    = or
//! or        = and *("or" and)
//! and       = unary *("and" unary)
//! unary     = "not" "(" filter ")" / "(" filter ")" / attrPath "[" filter "]"
//!           / attrPath "pr" / attrPath compareOp value
//! compareOp = eq / ne / co / sw / ew / gt / lt / ge / le        (keywords case-insensitive)
//! value     = true / false / null / JSON number / JSON string
//! attrPath  = [schema URN ":"] name ["." subName]
//! path      = attrPath / attrPath "[" filter "]" ["." subName]  (PATCH, `path.rs`)
//! ```
//!
//! Attribute names are case-insensitive. Strings compare case-insensitively except for
//! attributes the caller calls case-exact (`id`, `externalId`, `userName`, member values).
//! Inputs are bounded: [`MAX_FILTER_BYTES`] bytes, [`MAX_DEPTH`] levels of nesting and
//! [`MAX_TERMS`] comparisons, so neither parsing nor evaluation can be made to recurse or loop
//! without bound.

use serde_json::{Map, Value};

use super::error::ScimError;
use super::schema::EXTENSION_URNS;

/// Longest filter or PATCH path accepted.
pub const MAX_FILTER_BYTES: usize = 2048;
/// Deepest nesting of parentheses, `not` and value filters.
pub const MAX_DEPTH: usize = 16;
/// Most comparisons in one filter.
pub const MAX_TERMS: usize = 64;

/// `[urn:]name[.sub]`; `name` and `sub` as written (matched case-insensitively).
#[derive(Debug, Clone, PartialEq)]
pub struct AttrPath {
    /// An extension schema URN (canonical form); the core schema's URN is dropped.
    pub urn: Option<&'static str>,
    pub name: String,
    pub sub: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Lt,
    Ge,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Present(AttrPath),
    Compare(AttrPath, CompareOp, Value),
    /// `emails[type eq "work"]`: some element of the multi-valued attribute matches.
    ValuePath(AttrPath, Box<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    /// A word: an attribute path, a keyword or a number.
    Word(String),
    Str(String),
}

pub(super) fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' => i += 1,
            b'(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            b')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            b'[' => {
                out.push(Tok::LBracket);
                i += 1;
            }
            b']' => {
                out.push(Tok::RBracket);
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                loop {
                    match b.get(i) {
                        None => return Err("unterminated string".into()),
                        Some(b'\\') => i += 2,
                        Some(b'"') => break,
                        Some(_) => i += 1,
                    }
                }
                i += 1;
                let text = s.get(start..i).ok_or("malformed string")?;
                let v: String = serde_json::from_str(text).map_err(|_| format!("malformed string {text}"))?;
                out.push(Tok::Str(v));
            }
            c if c.is_ascii_alphanumeric() || matches!(c, b'$' | b'_' | b'-' | b'+' | b':' | b'.') => {
                let start = i;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'$' | b'_' | b'-' | b'+' | b':' | b'.'))
                {
                    i += 1;
                }
                out.push(Tok::Word(s[start..i].to_string()));
            }
            _ => {
                let c = s.get(i..).and_then(|r| r.chars().next()).unwrap_or('?');
                return Err(format!("unexpected character {c:?}"));
            }
        }
    }
    Ok(out)
}

const CORE_URNS: [&str; 2] =
    ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:core:2.0:Group"];

/// Whether `s` is an attribute or sub-attribute name: `ALPHA *(ALPHA / DIGIT / "-" / "_")`,
/// or `$ref`.
pub(super) fn valid_name(s: &str) -> bool {
    s.eq_ignore_ascii_case("$ref")
        || (s.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
            && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'))
}

/// Parses `[urn:]name[.sub]`.
pub fn parse_attr_path(word: &str) -> Result<AttrPath, String> {
    // An extension's URN alone names its whole object (`urn:...:enterprise:2.0:User`).
    if let Some(urn) = EXTENSION_URNS.iter().find(|u| u.eq_ignore_ascii_case(word)) {
        return Ok(AttrPath { urn: None, name: urn.to_string(), sub: None });
    }
    // Compared as bytes: `word` may hold any text, and a prefix of it need not end on a
    // character boundary (found by the scim_filter fuzz target).
    let b = word.as_bytes();
    let (urn, rest) = if b.len() > 4 && b[..4].eq_ignore_ascii_case(b"urn:") {
        let known = CORE_URNS.iter().map(|u| (*u, false)).chain(EXTENSION_URNS.iter().map(|u| (*u, true)));
        let mut found = None;
        for (u, ext) in known {
            if b.len() > u.len() && b[..u.len()].eq_ignore_ascii_case(u.as_bytes()) && b[u.len()] == b':' {
                found = Some((ext.then_some(u), &word[u.len() + 1..]));
                break;
            }
        }
        found.ok_or_else(|| format!("unknown schema in attribute path {word:?}"))?
    } else {
        (None, word)
    };
    let (name, sub) = match rest.split_once('.') {
        Some((n, s)) => (n, Some(s)),
        None => (rest, None),
    };
    if !valid_name(name) || sub.is_some_and(|s| !valid_name(s)) {
        return Err(format!("invalid attribute path {word:?}"));
    }
    Ok(AttrPath { urn, name: name.to_string(), sub: sub.map(String::from) })
}

pub(super) struct Parser {
    pub(super) toks: Vec<Tok>,
    pub(super) pos: usize,
    pub(super) terms: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn expect(&mut self, t: Tok, what: &str) -> Result<(), String> {
        if self.next() == Some(t) { Ok(()) } else { Err(format!("expected {what}")) }
    }

    pub(super) fn or(&mut self, depth: usize) -> Result<Filter, String> {
        let mut left = self.and(depth)?;
        while self.keyword("or") {
            self.pos += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and(depth)?));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Filter, String> {
        let mut left = self.unary(depth)?;
        while self.keyword("and") {
            self.pos += 1;
            left = Filter::And(Box::new(left), Box::new(self.unary(depth)?));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Filter, String> {
        if depth >= MAX_DEPTH {
            return Err(format!("nested more than {MAX_DEPTH} levels deep"));
        }
        // `not` before `(` is the operator; otherwise it is an attribute's name (`not pr`).
        if self.keyword("not") && self.toks.get(self.pos + 1) == Some(&Tok::LParen) {
            self.pos += 1;
            self.expect(Tok::LParen, "( after not")?;
            let f = self.or(depth + 1)?;
            self.expect(Tok::RParen, ")")?;
            return Ok(Filter::Not(Box::new(f)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let f = self.or(depth + 1)?;
            self.expect(Tok::RParen, ")")?;
            return Ok(f);
        }
        let Some(Tok::Word(word)) = self.next() else { return Err("expected an attribute".into()) };
        let attr = parse_attr_path(&word)?;
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(format!("more than {MAX_TERMS} comparisons"));
        }
        if self.peek() == Some(&Tok::LBracket) {
            self.pos += 1;
            if attr.sub.is_some() {
                return Err("a value filter applies to an attribute, not a sub-attribute".into());
            }
            let inner = self.or(depth + 1)?;
            self.expect(Tok::RBracket, "]")?;
            return Ok(Filter::ValuePath(attr, Box::new(inner)));
        }
        let Some(Tok::Word(op)) = self.next() else { return Err(format!("expected an operator after {word}")) };
        let op = match op.to_ascii_lowercase().as_str() {
            "pr" => return Ok(Filter::Present(attr)),
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "lt" => CompareOp::Lt,
            "ge" => CompareOp::Ge,
            "le" => CompareOp::Le,
            other => return Err(format!("unknown operator {other:?}")),
        };
        let value = match self.next() {
            Some(Tok::Str(s)) => Value::String(s),
            Some(Tok::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => match serde_json::from_str::<serde_json::Number>(&w) {
                    Ok(n) => Value::Number(n),
                    Err(_) => return Err(format!("invalid value {w:?} (strings are quoted)")),
                },
            },
            _ => return Err(format!("expected a value after {word}")),
        };
        match (&value, op) {
            (Value::Bool(_) | Value::Null, CompareOp::Eq | CompareOp::Ne) => {}
            (Value::Bool(_) | Value::Null, _) => return Err("only eq and ne compare with true, false or null".into()),
            (Value::Number(_), CompareOp::Co | CompareOp::Sw | CompareOp::Ew) => {
                return Err("co, sw and ew compare strings".into());
            }
            _ => {}
        }
        Ok(Filter::Compare(attr, op, value))
    }
}

pub(super) fn checked_len(s: &str, what: &str) -> Result<(), ScimError> {
    if s.len() > MAX_FILTER_BYTES {
        return Err(ScimError::bad(
            if what == "filter" { "invalidFilter" } else { "invalidPath" },
            format!("the {what} is longer than {MAX_FILTER_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Parses a filter (400 `invalidFilter` when it is not one).
pub fn parse_filter(s: &str) -> Result<Filter, ScimError> {
    checked_len(s, "filter")?;
    let toks = tokenize(s).map_err(ScimError::invalid_filter)?;
    let mut p = Parser { toks, pos: 0, terms: 0 };
    let f = p.or(0).map_err(ScimError::invalid_filter)?;
    if p.pos != p.toks.len() {
        return Err(ScimError::invalid_filter("unexpected text after the filter"));
    }
    Ok(f)
}

/// The key of `obj` that `name` names (attribute names are case-insensitive).
pub fn key_of(obj: &Map<String, Value>, name: &str) -> Option<String> {
    obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// Looks `name` up case-insensitively.
pub fn get_ci<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_exact(_: &AttrPath) -> bool {
        false
    }

    fn m(filter: &str, doc: Value) -> bool {
        parse_filter(filter).unwrap().matches(doc.as_object().unwrap(), no_exact)
    }

    #[test]
    fn filters_match_what_the_rfc_says() {
        let u = json!({
            "userName": "Alice", "active": true, "title": null,
            "emails": [{"type": "work", "value": "a@x.com"}, {"type": "home", "value": "a@home.org"}],
            "name": {"formatted": "Alice Smith"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"organization": "acme"},
            "meta": {"lastModified": "2026-01-02T00:00:00Z"}
        });
        assert!(m(r#"userName eq "alice""#, u.clone()));
        assert!(m(r#"USERNAME Eq "ALICE""#, u.clone()));
        assert!(!m(r#"userName ne "alice""#, u.clone()));
        assert!(m(r#"emails[type eq "work" and value co "@x"]"#, u.clone()));
        assert!(!m(r#"emails[type eq "work" and value co "home"]"#, u.clone()));
        assert!(m(r#"emails.value ew ".org""#, u.clone()));
        assert!(m(r#"name.formatted sw "alice" and active eq true"#, u.clone()));
        assert!(m(r#"not (active eq false) or userName eq "x""#, u.clone()));
        assert!(m("title eq null and not (title pr) and userName pr", u.clone()));
        assert!(m(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:organization eq "ACME""#, u.clone()));
        assert!(m(r#"meta.lastModified gt "2025-12-31T00:00:00Z""#, u.clone()));
        assert!(m(r#"(userName eq "bob" or userName eq "alice") and emails pr"#, u.clone()));
        assert!(m(r#"userName eq "say \"hi\"" or active eq true"#, u.clone()));
        // An attribute may be called `not` (found by the scim_filter fuzz target).
        assert!(!m("not pr", u.clone()) && m(r#"not eq null and not (not pr)"#, u));
    }

    #[test]
    fn malformed_filters_are_refused() {
        let deep = format!("{}userName pr{}", "(".repeat(40), ")".repeat(40));
        let many = vec!["userName pr"; 100].join(" or ");
        let long = format!("userName eq \"{}\"", "a".repeat(MAX_FILTER_BYTES));
        for bad in [
            "",
            "userName",
            "userName eq",
            "userName eq alice",
            "userName xx \"a\"",
            "userName eq \"a",
            "(userName pr",
            "userName pr)",
            "userName pr and",
            "emails[type eq \"work\"",
            "active gt true",
            "userName co 5",
            "urn:x:y:z eq \"1\"",
            "a.b.c pr",
            "1abc pr",
            "userName eq \"a\" extra",
            "not userName pr",
            "not",
            "userName eq \"\\u00\"",
            "userName\u{0} pr",
            "urn:\u{71b}i pr",
            deep.as_str(),
            many.as_str(),
            long.as_str(),
        ] {
            let e = parse_filter(bad).unwrap_err();
            assert!(matches!(e, ScimError::BadRequest { scim_type: "invalidFilter", .. }), "{bad:?}: {e:?}");
        }
    }
}
