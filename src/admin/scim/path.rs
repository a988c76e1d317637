//! PATCH paths (RFC 7644 §3.5.2): `attrPath`, optionally `[filter]` and then `.subName`,
//! parsed with the filter grammar of `filter.rs`.

use super::error::ScimError;
use super::filter::{AttrPath, Filter, Parser, checked_len, parse_attr_path, tokenize, valid_name};

/// A PATCH target: `attrPath`, optionally `[filter]` and `.subName`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
}

/// Parses a PATCH path (400 `invalidPath` when it is not one).
pub fn parse_patch_path(s: &str) -> Result<PatchPath, ScimError> {
    checked_len(s, "path")?;
    let bad = |m: String| ScimError::invalid_path(format!("invalid path {s:?}: {m}"));
    // `emails[type eq "work"].value`: the part before `[`, the filter, then `.sub` after `]`.
    let Some(open) = s.find('[') else {
        if s.trim() != s || s.contains(' ') {
            return Err(bad("unexpected space".into()));
        }
        return Ok(PatchPath { attr: parse_attr_path(s).map_err(bad)?, filter: None });
    };
    let close = s.rfind(']').ok_or_else(|| bad("missing ]".into()))?;
    if close < open {
        return Err(bad("missing ]".into()));
    }
    let mut attr = parse_attr_path(&s[..open]).map_err(bad)?;
    if attr.sub.is_some() {
        return Err(bad("a value filter applies to an attribute, not a sub-attribute".into()));
    }
    let toks = tokenize(&s[open + 1..close]).map_err(bad)?;
    let mut p = Parser { toks, pos: 0, terms: 0 };
    let filter = p.or(1).map_err(bad)?;
    if p.pos != p.toks.len() {
        return Err(bad("unexpected text in the value filter".into()));
    }
    let rest = &s[close + 1..];
    if !rest.is_empty() {
        let sub = rest
            .strip_prefix('.')
            .filter(|r| valid_name(r))
            .ok_or_else(|| bad("expected .subAttribute after ]".into()))?;
        attr.sub = Some(sub.to_string());
    }
    Ok(PatchPath { attr, filter: Some(filter) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::scim::schema::EXTENSION_URNS;

    #[test]
    fn patch_paths() {
        let p = parse_patch_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(p.attr.name, "emails");
        assert_eq!(p.attr.sub.as_deref(), Some("value"));
        assert!(p.filter.is_some());
        let p = parse_patch_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:organization").unwrap();
        assert_eq!(p.attr.urn, Some(EXTENSION_URNS[0]));
        assert_eq!(p.attr.name, "organization");
        let p = parse_patch_path("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName").unwrap();
        assert_eq!((p.attr.urn, p.attr.name.as_str(), p.attr.sub.as_deref()), (None, "name", Some("givenName")));
        assert_eq!(parse_patch_path(r#"members[value eq "x"]"#).unwrap().attr.sub, None);
        // Not a character boundary four bytes in (found by the scim_filter fuzz target).
        assert!(parse_patch_path("\u{0}\u{0}\u{0}\u{71b}i").is_err());
        assert!(parse_patch_path("urn\u{e9}\u{e9}").is_err());
        for bad in
            ["", "a b", "emails[type eq \"work\"", "emails]x[", "emails[type eq \"w\"]value", "name.x[a pr]", "a..b"]
        {
            assert!(parse_patch_path(bad).is_err(), "{bad:?}");
        }
    }
}
