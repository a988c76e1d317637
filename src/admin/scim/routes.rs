//! Paths and methods, query parameters, request bodies, responses, list paging and attribute
//! projection for `/scim/v2`.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, HOST, HeaderValue, IF_MATCH, LOCATION};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::Scim;
use super::error::ScimError;
use super::filter::{get_ci, parse_filter};
use super::list::{ListParams, Pager, Projection, list_response};
use super::schema::{self, SEARCH_URN};

/// Largest page (`count`); also the page size when a request names none.
pub const MAX_COUNT: usize = 200;
/// Most operations in one PATCH request.
pub const MAX_PATCH_OPERATIONS: usize = 100;
/// Most records one filtered or paged listing examines; a directory larger than this must be
/// listed with `userName eq` / `id eq` filters (400 `tooMany` otherwise).
pub const MAX_SCAN: usize = 100_000;

/// A JSON response with SCIM's media type and `Cache-Control: no-store`.
pub fn scim_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(serde_json::to_vec(body).expect("JSON serializes"))));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/scim+json"));
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `W/"<hash>"`: a resource's version, from its content (without `meta`).
pub fn version_of(doc: &Value) -> String {
    let mut doc = doc.clone();
    if let Some(o) = doc.as_object_mut() {
        o.remove("meta");
    }
    let digest = Sha256::digest(serde_json::to_vec(&doc).expect("JSON serializes"));
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("W/\"{hex}\"")
}

/// A single resource: 200 (or 201 with `Location`), `ETag` from `meta.version`, projected.
pub fn resource_response(status: StatusCode, doc: Value, projection: &Projection) -> Response<Full<Bytes>> {
    let version = doc["meta"]["version"].as_str().and_then(|v| HeaderValue::from_str(v).ok());
    let location = doc["meta"]["location"].as_str().and_then(|v| HeaderValue::from_str(v).ok());
    let mut r = scim_response(status, &projection.apply(doc));
    if let Some(v) = version {
        r.headers_mut().insert(ETAG, v);
    }
    if let (StatusCode::CREATED, Some(l)) = (status, location) {
        r.headers_mut().insert(LOCATION, l);
    }
    r
}

/// The request's `If-Match`, checked against the resource's current version (412 otherwise).
pub fn check_if_match(parts: &Parts, current: &Value) -> Result<(), ScimError> {
    let Some(want) = parts.headers.get(IF_MATCH) else { return Ok(()) };
    let want = want.to_str().map_err(|_| ScimError::PreconditionFailed)?;
    let have = current["meta"]["version"].as_str().unwrap_or_default();
    let weakless = |v: &str| v.trim().trim_start_matches("W/").to_string();
    if want.trim() == "*" || want.split(',').any(|w| weakless(w) == weakless(have)) {
        Ok(())
    } else {
        Err(ScimError::PreconditionFailed)
    }
}

/// The query string's parameters; a repeated one is refused.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<&str>) -> Result<Self, ScimError> {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect();
        for (i, (k, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(other, _)| other == k) {
                return Err(ScimError::invalid_value(format!("the query parameter {k:?} is repeated")));
            }
        }
        Ok(Self(pairs))
    }

    /// Refuses any parameter (for requests that take none).
    fn finish(&self) -> Result<(), ScimError> {
        match self.0.first() {
            Some((k, _)) => Err(ScimError::invalid_value(format!("unexpected query parameter {k:?}"))),
            None => Ok(()),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn projection(&self) -> Result<Projection, ScimError> {
        Projection::parse(self.get("attributes"), self.get("excludedAttributes"))
    }

    fn list_params(&self) -> Result<ListParams, ScimError> {
        let int = |name: &str| -> Result<Option<i64>, ScimError> {
            self.get(name)
                .map(|v| {
                    v.trim().parse::<i64>().map_err(|_| ScimError::invalid_value(format!("{name} must be an integer")))
                })
                .transpose()
        };
        list_params(self.get("filter"), int("startIndex")?, int("count")?, self.projection()?)
    }
}

fn list_params(
    filter: Option<&str>,
    start: Option<i64>,
    count: Option<i64>,
    projection: Projection,
) -> Result<ListParams, ScimError> {
    Ok(ListParams {
        filter: filter.map(parse_filter).transpose()?,
        // RFC 7644 §3.4.2.4: below 1 means 1; a negative count means 0; more than the maximum
        // is served as the maximum.
        start: usize::try_from(start.unwrap_or(1).max(1)).unwrap_or(usize::MAX),
        count: usize::try_from(count.unwrap_or(MAX_COUNT as i64).clamp(0, MAX_COUNT as i64)).unwrap_or(MAX_COUNT),
        projection,
    })
}

/// A `.search` request body (RFC 7644 §3.4.3).
fn search_params(body: &Value) -> Result<ListParams, ScimError> {
    let obj = body.as_object().ok_or_else(|| ScimError::invalid_syntax("the body must be a JSON object"))?;
    require_schema(obj, SEARCH_URN)?;
    let text = |name: &str| -> Result<Option<String>, ScimError> {
        match get_ci(obj, name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Array(items)) if name != "filter" => Ok(Some(
                items
                    .iter()
                    .map(|i| i.as_str().map(String::from))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| ScimError::invalid_value(format!("{name} must list strings")))?
                    .join(","),
            )),
            Some(_) => Err(ScimError::invalid_value(format!("{name} must be a string"))),
        }
    };
    let int = |name: &str| -> Result<Option<i64>, ScimError> {
        match get_ci(obj, name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                v.as_i64().map(Some).ok_or_else(|| ScimError::invalid_value(format!("{name} must be an integer")))
            }
        }
    };
    let projection = Projection::parse(text("attributes")?.as_deref(), text("excludedAttributes")?.as_deref())?;
    list_params(text("filter")?.as_deref(), int("startIndex")?, int("count")?, projection)
}

/// Refuses a body whose `schemas` does not list `urn`.
pub fn require_schema(obj: &Map<String, Value>, urn: &str) -> Result<(), ScimError> {
    let listed = get_ci(obj, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|v| v.as_str().is_some_and(|v| v.eq_ignore_ascii_case(urn))));
    if listed { Ok(()) } else { Err(ScimError::invalid_syntax(format!("schemas must list {urn}"))) }
}

/// The base of `meta.location`: `http://<Host>/scim/v2` (the admin listener serves plain HTTP),
/// or the bare path when the request names no usable host.
fn base_url(parts: &Parts) -> String {
    let host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)));
    match host {
        Some(h) => format!("http://{h}/scim/v2"),
        None => "/scim/v2".to_string(),
    }
}

/// A request's parts the handlers need.
pub struct Call {
    pub parts: Parts,
    pub base: String,
    body: Incoming,
    max_body: usize,
}

impl Call {
    /// The JSON body (an object), with SCIM's or JSON's media type, at most
    /// `admin.max_body_bytes`.
    pub async fn json(self) -> Result<(Parts, String, Value), ScimError> {
        let bytes = Limited::new(self.body, self.max_body)
            .collect()
            .await
            .map_err(|_| ScimError::PayloadTooLarge(self.max_body))?
            .to_bytes();
        let media = self
            .parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase());
        if !matches!(media.as_deref(), Some("application/scim+json" | "application/json")) {
            return Err(ScimError::UnsupportedMediaType);
        }
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ScimError::invalid_syntax(format!("the body is not valid JSON: {e}")))?;
        if !v.is_object() {
            return Err(ScimError::invalid_syntax("the body must be a JSON object"));
        }
        Ok((self.parts, self.base, v))
    }

    /// Refuses a body on a request that takes none (GET, DELETE).
    async fn no_body(self) -> Result<(Parts, String), ScimError> {
        let bytes = Limited::new(self.body, self.max_body)
            .collect()
            .await
            .map_err(|_| ScimError::PayloadTooLarge(self.max_body))?
            .to_bytes();
        if !bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ScimError::invalid_syntax("this request takes no body"));
        }
        Ok((self.parts, self.base))
    }
}

/// The methods a path serves (`Allow`), or `None` for no such endpoint.
fn allowed(segments: &[&str]) -> Option<&'static str> {
    Some(match segments {
        ["ServiceProviderConfig"] | ["ResourceTypes"] | ["ResourceTypes", _] | ["Schemas"] | ["Schemas", _] => "GET",
        ["Users" | "Groups"] => "GET, POST",
        [".search"] | ["Users" | "Groups", ".search"] => "POST",
        ["Users" | "Groups", _] => "GET, PUT, PATCH, DELETE",
        _ => return None,
    })
}

/// Routes one authenticated request.
pub async fn route(scim: &Scim, req: Request<Incoming>, segments: &[&str]) -> Result<Response<Full<Bytes>>, ScimError> {
    let allow = allowed(segments).ok_or_else(|| ScimError::NotFound("no such SCIM endpoint".into()))?;
    let method = req.method().clone();
    let method_name = if method == Method::HEAD { "GET" } else { method.as_str() };
    if !allow.split(", ").any(|m| m == method_name) {
        return Err(ScimError::MethodNotAllowed(allow));
    }
    let query = Query::parse(req.uri().query())?;
    let (parts, body) = req.into_parts();
    let base = base_url(&parts);
    let call = Call { parts, base, body, max_body: scim.inner.config.admin.max_body_bytes };
    let get = method == Method::GET || method == Method::HEAD;
    match segments {
        ["ServiceProviderConfig"] => {
            call.no_body().await?;
            Ok(scim_response(StatusCode::OK, &schema::service_provider_config()))
        }
        ["ResourceTypes"] => {
            call.no_body().await?;
            let all = schema::resource_types();
            let n = all.len();
            Ok(list_response(all, n, 1))
        }
        ["Schemas"] => {
            call.no_body().await?;
            let all = schema::schemas();
            let n = all.len();
            Ok(list_response(all, n, 1))
        }
        ["ResourceTypes", id] | ["Schemas", id] => {
            call.no_body().await?;
            let all = if segments[0] == "Schemas" { schema::schemas() } else { schema::resource_types() };
            all.into_iter()
                .find(|d| d["id"].as_str() == Some(id))
                .map(|d| scim_response(StatusCode::OK, &d))
                .ok_or_else(|| ScimError::NotFound(format!("no {} {id:?}", segments[0])))
        }
        ["Users" | "Groups"] if get => {
            let params = query.list_params()?;
            let (_, base) = call.no_body().await?;
            if segments[0] == "Users" {
                scim.list_users(&base, params).await
            } else {
                scim.list_groups(&base, params).await
            }
        }
        [".search"] => {
            query.finish()?;
            let (_, base, body) = call.json().await?;
            let params = search_params(&body)?;
            // Users first, then groups, each in id order.
            let mut pager = Pager::new(&params);
            scim.find_users(&base, params.filter.as_ref(), &mut pager).await?;
            scim.find_groups(&base, params.filter.as_ref(), &mut pager).await?;
            Ok(pager.response(&params.projection))
        }
        ["Users" | "Groups", ".search"] => {
            query.finish()?;
            let (_, base, body) = call.json().await?;
            let params = search_params(&body)?;
            if segments[0] == "Users" {
                scim.list_users(&base, params).await
            } else {
                scim.list_groups(&base, params).await
            }
        }
        ["Users"] => {
            let projection = query.projection()?;
            let (_, base, body) = call.json().await?;
            scim.create_user(&base, &body, &projection).await
        }
        ["Groups"] => {
            let projection = query.projection()?;
            let (_, base, body) = call.json().await?;
            scim.create_group(&base, &body, &projection).await
        }
        [kind, id] => {
            let projection = query.projection()?;
            let users = *kind == "Users";
            match method {
                Method::GET | Method::HEAD => {
                    let (_, base) = call.no_body().await?;
                    let doc = if users { scim.get_user(&base, id).await? } else { scim.get_group(&base, id).await? };
                    Ok(resource_response(StatusCode::OK, doc, &projection))
                }
                Method::DELETE => {
                    let (parts, base) = call.no_body().await?;
                    if users {
                        scim.delete_user(&parts, &base, id).await?
                    } else {
                        scim.delete_group(&parts, &base, id).await?
                    }
                    let mut r = Response::new(Full::new(Bytes::new()));
                    *r.status_mut() = StatusCode::NO_CONTENT;
                    Ok(r)
                }
                Method::PUT => {
                    let (parts, base, body) = call.json().await?;
                    let doc = if users {
                        scim.replace_user(&parts, &base, id, &body).await?
                    } else {
                        scim.replace_group(&parts, &base, id, &body).await?
                    };
                    Ok(resource_response(StatusCode::OK, doc, &projection))
                }
                _ => {
                    let (parts, base, body) = call.json().await?;
                    let ops = super::patch::parse(&body)?;
                    let doc = if users {
                        scim.patch_user(&parts, &base, id, &ops).await?
                    } else {
                        scim.patch_group(&parts, &base, id, &ops).await?
                    };
                    Ok(resource_response(StatusCode::OK, doc, &projection))
                }
            }
        }
        _ => Err(ScimError::NotFound("no such SCIM endpoint".into())),
    }
}
