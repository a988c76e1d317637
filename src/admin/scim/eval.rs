//! Filters evaluated against a resource's JSON (or one element of a multi-valued attribute):
//! attribute names case-insensitive, strings case-insensitive unless the caller says the
//! attribute is case-exact, absent and null alike.

use serde_json::{Map, Value};

use super::filter::{AttrPath, CompareOp, Filter, get_ci};

/// The object `attr` lives in: the resource itself, or its extension object.
fn container<'a>(obj: &'a Map<String, Value>, attr: &AttrPath) -> Option<&'a Map<String, Value>> {
    match attr.urn {
        None => Some(obj),
        Some(urn) => get_ci(obj, urn).and_then(Value::as_object),
    }
}

/// Every value `attr` reaches in `obj`, arrays flattened.
fn values<'a>(obj: &'a Map<String, Value>, attr: &AttrPath, out: &mut Vec<&'a Value>) {
    let Some(v) = container(obj, attr).and_then(|c| get_ci(c, &attr.name)) else { return };
    let mut push = |v: &'a Value| match (&attr.sub, v) {
        (None, Value::Array(items)) => out.extend(items.iter()),
        (None, v) => out.push(v),
        (Some(sub), Value::Object(o)) => match get_ci(o, sub) {
            Some(Value::Array(items)) => out.extend(items.iter()),
            Some(v) => out.push(v),
            None => {}
        },
        (Some(_), _) => {}
    };
    match v {
        Value::Array(items) if attr.sub.is_some() => items.iter().for_each(&mut push),
        v => push(v),
    }
}

/// Whether string comparisons on `attr` are case-exact.
pub type CaseExact = fn(&AttrPath) -> bool;

fn compare(v: &Value, op: CompareOp, want: &Value, exact: bool) -> bool {
    use CompareOp::*;
    match (v, want) {
        (Value::String(a), Value::String(b)) => {
            let (a, b) = if exact { (a.clone(), b.clone()) } else { (a.to_lowercase(), b.to_lowercase()) };
            match op {
                Eq => a == b,
                Ne => a != b,
                Co => a.contains(&b),
                Sw => a.starts_with(&b),
                Ew => a.ends_with(&b),
                Gt => a > b,
                Lt => a < b,
                Ge => a >= b,
                Le => a <= b,
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            let (Some(a), Some(b)) = (a.as_f64(), b.as_f64()) else { return false };
            match op {
                Eq => a == b,
                Ne => a != b,
                Gt => a > b,
                Lt => a < b,
                Ge => a >= b,
                Le => a <= b,
                Co | Sw | Ew => false,
            }
        }
        (Value::Bool(a), Value::Bool(b)) => match op {
            Eq => a == b,
            Ne => a != b,
            _ => false,
        },
        _ => op == Ne,
    }
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

impl Filter {
    /// Whether the resource (or multi-valued element) `obj` matches.
    pub fn matches(&self, obj: &Map<String, Value>, exact: CaseExact) -> bool {
        match self {
            Self::And(a, b) => a.matches(obj, exact) && b.matches(obj, exact),
            Self::Or(a, b) => a.matches(obj, exact) || b.matches(obj, exact),
            Self::Not(f) => !f.matches(obj, exact),
            Self::Present(attr) => {
                let mut vs = Vec::new();
                values(obj, attr, &mut vs);
                vs.into_iter().any(present)
            }
            Self::Compare(attr, op, want) => {
                let mut vs = Vec::new();
                values(obj, attr, &mut vs);
                vs.retain(|v| !v.is_null());
                if vs.is_empty() {
                    // An absent attribute equals null and differs from everything else.
                    return match op {
                        CompareOp::Eq => want.is_null(),
                        CompareOp::Ne => !want.is_null(),
                        _ => false,
                    };
                }
                let exact = exact(attr);
                match op {
                    // `ne` holds when no value equals.
                    CompareOp::Ne => !vs.iter().any(|v| compare(v, CompareOp::Eq, want, exact)),
                    _ => vs.iter().any(|v| compare(v, *op, want, exact)),
                }
            }
            Self::ValuePath(attr, inner) => {
                let mut vs = Vec::new();
                values(obj, attr, &mut vs);
                vs.into_iter().filter_map(Value::as_object).any(|el| inner.matches(el, exact))
            }
        }
    }

    /// `attr eq "value"` on a top-level attribute: the one shape served without a scan.
    pub fn equality(&self) -> Option<(&AttrPath, &str)> {
        match self {
            Self::Compare(attr, CompareOp::Eq, Value::String(s)) if attr.urn.is_none() && attr.sub.is_none() => {
                Some((attr, s))
            }
            _ => None,
        }
    }
}
