//! What listings share: their parameters, attribute projection (`attributes` /
//! `excludedAttributes`), paging over resources that arrive in id order, and the ListResponse.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{Map, Value, json};

use super::error::ScimError;
use super::filter::{Filter, MAX_FILTER_BYTES, parse_attr_path};
use super::routes::scim_response;
use super::schema::LIST_URN;

/// `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5): top-level names, or
/// `name.subName`; `schemas` and `id` are always returned.
#[derive(Debug, Default, Clone)]
pub struct Projection {
    include: Vec<(String, Option<String>)>,
    exclude: Vec<(String, Option<String>)>,
}

impl Projection {
    pub fn parse(attributes: Option<&str>, excluded: Option<&str>) -> Result<Self, ScimError> {
        if attributes.is_some() && excluded.is_some() {
            return Err(ScimError::invalid_value("attributes and excludedAttributes cannot both be given"));
        }
        let list = |s: Option<&str>| -> Result<Vec<(String, Option<String>)>, ScimError> {
            let Some(s) = s else { return Ok(Vec::new()) };
            if s.len() > MAX_FILTER_BYTES {
                return Err(ScimError::invalid_value(format!("attribute lists are at most {MAX_FILTER_BYTES} bytes")));
            }
            s.split(',')
                .map(|a| {
                    let p = parse_attr_path(a.trim()).map_err(ScimError::invalid_value)?;
                    Ok(match p.urn {
                        Some(urn) => (urn.to_string(), Some(p.name)),
                        None => (p.name, p.sub),
                    })
                })
                .collect()
        };
        Ok(Self { include: list(attributes)?, exclude: list(excluded)? })
    }

    /// The resource with only the requested attributes.
    pub fn apply(&self, doc: Value) -> Value {
        let Value::Object(mut obj) = doc else { return doc };
        let always = |k: &str| k == "schemas" || k == "id";
        if !self.include.is_empty() {
            let mut kept = Map::new();
            for (k, v) in std::mem::take(&mut obj) {
                let wanted: Vec<&Option<String>> =
                    self.include.iter().filter(|(n, _)| n.eq_ignore_ascii_case(&k)).map(|(_, s)| s).collect();
                let subs: Vec<&String> = wanted.iter().filter_map(|s| s.as_ref()).collect();
                if always(&k) || wanted.iter().any(|s| s.is_none()) {
                    kept.insert(k, v);
                } else if !wanted.is_empty() {
                    if let Value::Object(inner) = v {
                        let sub: Map<String, Value> = inner
                            .into_iter()
                            .filter(|(sk, _)| subs.iter().any(|w| w.eq_ignore_ascii_case(sk)))
                            .collect();
                        kept.insert(k, Value::Object(sub));
                    } else if let Value::Array(items) = v {
                        let items = items
                            .into_iter()
                            .map(|item| match item {
                                Value::Object(o) => Value::Object(
                                    o.into_iter()
                                        .filter(|(sk, _)| subs.iter().any(|w| w.eq_ignore_ascii_case(sk)))
                                        .collect(),
                                ),
                                other => other,
                            })
                            .collect();
                        kept.insert(k, Value::Array(items));
                    }
                }
            }
            obj = kept;
        }
        for (name, sub) in &self.exclude {
            let Some(key) = obj.keys().find(|k| k.eq_ignore_ascii_case(name) && !always(k)).cloned() else {
                continue;
            };
            match sub {
                None => {
                    obj.remove(&key);
                }
                Some(sub) => match obj.get_mut(&key) {
                    Some(Value::Object(o)) => o.retain(|k, _| !k.eq_ignore_ascii_case(sub)),
                    Some(Value::Array(items)) => {
                        for item in items.iter_mut().filter_map(Value::as_object_mut) {
                            item.retain(|k, _| !k.eq_ignore_ascii_case(sub));
                        }
                    }
                    _ => {}
                },
            }
        }
        Value::Object(obj)
    }
}

/// A listing's parameters (from the query string or a `.search` body).
#[derive(Debug, Default)]
pub struct ListParams {
    pub filter: Option<Filter>,
    /// 1-based.
    pub start: usize,
    pub count: usize,
    pub projection: Projection,
}

/// Pages over resources that arrive in id order, counting every match.
pub struct Pager {
    params_start: usize,
    params_count: usize,
    pub total: usize,
    pub page: Vec<Value>,
}

impl Pager {
    pub fn new(params: &ListParams) -> Self {
        Self { params_start: params.start, params_count: params.count, total: 0, page: Vec::new() }
    }

    /// Offers one matching resource.
    pub fn push(&mut self, doc: Value) {
        self.total += 1;
        if self.total >= self.params_start && self.page.len() < self.params_count {
            self.page.push(doc);
        }
    }

    pub fn response(self, projection: &Projection) -> Response<Full<Bytes>> {
        let items: Vec<Value> = self.page.into_iter().map(|d| projection.apply(d)).collect();
        list_response(items, self.total, self.params_start)
    }
}

pub fn list_response(items: Vec<Value>, total: usize, start: usize) -> Response<Full<Bytes>> {
    scim_response(
        StatusCode::OK,
        &json!({
            "schemas": [LIST_URN],
            "totalResults": total,
            "itemsPerPage": items.len(),
            "startIndex": start,
            "Resources": items,
        }),
    )
}
