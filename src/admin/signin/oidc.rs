//! The OpenID Connect relying party: discovery, the authorization code flow with PKCE, `state`
//! and `nonce`, and ID token validation (signature against the provider's JWKS, `iss`, `aud`,
//! `exp`, `nonce`), all by the `openidconnect` crate over our own HTTP client.
//!
//! The provider's metadata and keys are fetched on first use and kept for an hour. A token
//! signed with a key we do not hold (the provider rotated its keys) fetches them again, at most
//! once every [`MIN_REFETCH`], and is checked once more.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod,
    CoreDeviceAuthorizationResponse, CoreGrantType, CoreIdToken, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType,
    CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    DeviceAuthorizationUrl, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadata, RedirectUrl,
    Scope, SignatureVerificationError, TokenResponse,
};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use thiserror::Error;

use super::claims::{Identity, identity_from_claims};
use crate::config::OidcConfig;

/// How long discovered metadata and keys are kept.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// The least time between two fetches caused by unknown keys. ID tokens reach us only from our
/// own code exchange with the provider, so outsiders cannot drive these fetches; the bound keeps
/// a misbehaving provider from being asked on every sign-in.
pub const MIN_REFETCH: Duration = Duration::from_secs(5);
/// Deadline for each request to the provider.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest provider response read.
const MAX_PROVIDER_RESPONSE: usize = 1024 * 1024;

/// Discovery's answer, with the device authorization endpoint (RFC 8628) when the provider has
/// one.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct DeviceEndpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_authorization_endpoint: Option<DeviceAuthorizationUrl>,
}

impl AdditionalProviderMetadata for DeviceEndpoint {}

type Metadata = ProviderMetadata<
    DeviceEndpoint,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// The client as discovery builds it: an authorization endpoint, a token and user info endpoint
/// when the provider names them.
type RpClient = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

type HttpClient = Client<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, Full<Bytes>>;

/// Why talking to the provider failed. Never carries a code, token or secret.
#[derive(Debug, Error)]
pub enum OidcError {
    #[error("the identity provider is unreachable or answered badly: {0}")]
    Provider(String),
    #[error("the identity provider refused the sign-in: {0}")]
    Refused(String),
    #[error("the ID token is not acceptable: {0}")]
    IdToken(String),
    #[error("the ID token's claims cannot name a person: {0}")]
    Claims(String),
    #[error("the identity provider offers no device sign-in (no device_authorization_endpoint)")]
    NoDeviceFlow,
    /// The person has not finished signing in on their device yet.
    #[error("the sign-in is not finished yet")]
    Pending,
}

/// A device sign-in in progress (`tokengate login`), sealed and held by the CLI between polls.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Device {
    pub details: CoreDeviceAuthorizationResponse,
    /// When the provider stops accepting the code (Unix seconds).
    pub expires_at: u64,
}

#[derive(Debug, Error)]
pub enum HttpError {
    #[error("{0}")]
    Send(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the response is larger than {MAX_PROVIDER_RESPONSE} bytes")]
    TooLarge,
}

/// An authorization in progress, sealed into a short-lived cookie between the redirect to the
/// provider and the callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flow {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    pub return_to: String,
    /// Started at (Unix seconds).
    pub at: u64,
}

impl Flow {
    /// How long a sign-in may take at the provider.
    pub const LIFETIME: Duration = Duration::from_secs(600);

    pub fn state_matches(&self, state: &str) -> bool {
        self.state.as_bytes().ct_eq(state.as_bytes()).into()
    }
}

struct Fetched {
    metadata: Metadata,
    at: Instant,
}

/// The relying party; cheap to clone.
#[derive(Clone)]
pub struct Oidc {
    inner: Arc<Inner>,
}

struct Inner {
    config: OidcConfig,
    http: HttpClient,
    fetched: tokio::sync::Mutex<Option<Fetched>>,
}

async fn send(http: HttpClient, req: openidconnect::HttpRequest) -> Result<openidconnect::HttpResponse, HttpError> {
    let (parts, body) = req.into_parts();
    let req = http::Request::from_parts(parts, Full::new(Bytes::from(body)));
    let timeout = |_| HttpError::Timeout(PROVIDER_TIMEOUT);
    let resp = tokio::time::timeout(PROVIDER_TIMEOUT, http.request(req))
        .await
        .map_err(timeout)?
        .map_err(|e| HttpError::Send(e.to_string()))?;
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(PROVIDER_TIMEOUT, Limited::new(body, MAX_PROVIDER_RESPONSE).collect())
        .await
        .map_err(timeout)?
        .map_err(|_| HttpError::TooLarge)?
        .to_bytes();
    Ok(http::Response::from_parts(parts, body.to_vec()))
}

/// The text of an error and its causes (the crate's errors keep the detail in their sources).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// Signature algorithms accepted for ID tokens: asymmetric ones only (never `none`, never a
/// MAC keyed with the client secret).
const ALGORITHMS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

impl Oidc {
    pub fn new(config: OidcConfig) -> Self {
        let https = crate::net::tls::client_connector(hyper_util::client::legacy::connect::HttpConnector::new());
        let http = Client::builder(TokioExecutor::new()).build(https);
        Self { inner: Arc::new(Inner { config, http, fetched: tokio::sync::Mutex::new(None) }) }
    }

    pub fn config(&self) -> &OidcConfig {
        &self.inner.config
    }

    /// The provider's metadata and keys: cached, fetched again when older than an hour, or
    /// when `stale` and the last fetch is older than [`MIN_REFETCH`].
    async fn metadata(&self, stale: bool) -> Result<Metadata, OidcError> {
        let mut fetched = self.inner.fetched.lock().await;
        if let Some(f) = fetched.as_ref() {
            let age = f.at.elapsed();
            if age < METADATA_TTL && (!stale || age < MIN_REFETCH) {
                return Ok(f.metadata.clone());
            }
        }
        let issuer = IssuerUrl::new(self.inner.config.issuer.clone()).map_err(|e| OidcError::Provider(chain(&e)))?;
        let http = self.inner.http.clone();
        let client = move |req| send(http.clone(), req);
        let metadata = Metadata::discover_async(issuer, &client).await.map_err(|e| OidcError::Provider(chain(&e)))?;
        *fetched = Some(Fetched { metadata: metadata.clone(), at: Instant::now() });
        Ok(metadata)
    }

    fn client(&self, metadata: Metadata) -> RpClient {
        let c = &self.inner.config;
        CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(c.client_id.clone()),
            c.client_secret.as_ref().map(|s| ClientSecret::new(s.expose().to_string())),
        )
        .set_redirect_uri(RedirectUrl::from_url(c.redirect_url.clone()))
    }

    /// Where to send the browser to sign in, and the flow to seal until it comes back.
    pub async fn begin(&self, return_to: String, now_secs: u64) -> Result<(url::Url, Flow), OidcError> {
        let client = self.client(self.metadata(false).await?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .set_pkce_challenge(challenge);
        for s in &self.inner.config.scopes {
            request = request.add_scope(Scope::new(s.clone()));
        }
        let (url, state, nonce) = request.url();
        let flow = Flow {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
            return_to,
            at: now_secs,
        };
        Ok((url, flow))
    }

    /// Starts a device sign-in (RFC 8628) at the provider.
    pub async fn begin_device(&self, now_secs: u64) -> Result<Device, OidcError> {
        let metadata = self.metadata(false).await?;
        let endpoint =
            metadata.additional_metadata().device_authorization_endpoint.clone().ok_or(OidcError::NoDeviceFlow)?;
        let client = self.client(metadata).set_device_authorization_url(endpoint);
        let http = self.inner.http.clone();
        let http_client = move |req| send(http.clone(), req);
        let mut request = client.exchange_device_code();
        for s in &self.inner.config.scopes {
            request = request.add_scope(Scope::new(s.clone()));
        }
        let details: CoreDeviceAuthorizationResponse =
            request.request_async(&http_client).await.map_err(|e| match e {
                openidconnect::RequestTokenError::ServerResponse(r) => OidcError::Refused(r.to_string()),
                e => OidcError::Provider(chain(&e)),
            })?;
        let expires_at = now_secs + details.expires_in().as_secs();
        Ok(Device { details, expires_at })
    }

    /// Waits up to `wait` for the person to finish a device sign-in; [`OidcError::Pending`] when
    /// they have not yet.
    pub async fn poll_device(&self, device: &Device, wait: Duration) -> Result<Identity, OidcError> {
        let metadata = self.metadata(false).await?;
        let endpoint =
            metadata.additional_metadata().device_authorization_endpoint.clone().ok_or(OidcError::NoDeviceFlow)?;
        let client = self.client(metadata).set_device_authorization_url(endpoint);
        let http = self.inner.http.clone();
        let http_client = move |req| send(http.clone(), req);
        let response = client
            .exchange_device_access_token(&device.details)
            .map_err(|e| OidcError::Provider(chain(&e)))?
            .request_async(&http_client, tokio::time::sleep, Some(wait))
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::ServerResponse(r) => match r.error() {
                    openidconnect::DeviceCodeErrorResponseType::ExpiredToken => OidcError::Pending,
                    _ => OidcError::Refused(r.to_string()),
                },
                e => OidcError::Provider(chain(&e)),
            })?;
        let id_token = response.id_token().ok_or_else(|| OidcError::IdToken("the provider sent none".into()))?;
        // The device grant carries no nonce; the token is bound to this exchange instead.
        self.check(&self.client(self.metadata(false).await?), id_token, |_: Option<&Nonce>| Ok(())).await?;
        self.identity(id_token)
    }

    /// Exchanges `code` (with the flow's PKCE verifier) and validates the ID token.
    pub async fn finish(&self, flow: &Flow, code: String) -> Result<Identity, OidcError> {
        let metadata = self.metadata(false).await?;
        let client = self.client(metadata);
        let http = self.inner.http.clone();
        let http_client = move |req| send(http.clone(), req);
        let response = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| OidcError::Provider(chain(&e)))?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier.clone()))
            .request_async(&http_client)
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::ServerResponse(r) => OidcError::Refused(r.to_string()),
                e => OidcError::Provider(chain(&e)),
            })?;
        let id_token = response.id_token().ok_or_else(|| OidcError::IdToken("the provider sent none".into()))?;
        let nonce = Nonce::new(flow.nonce.clone());
        self.check(&client, id_token, &nonce).await?;
        self.identity(id_token)
    }

    /// Checks `id_token` with `client`'s keys; a key we do not hold (the provider may have
    /// rotated its keys since we fetched them) fetches them again and checks once more.
    async fn check<N: openidconnect::NonceVerifier + Copy>(
        &self,
        client: &RpClient,
        id_token: &CoreIdToken,
        nonce: N,
    ) -> Result<(), OidcError> {
        let verify = |client: &RpClient| {
            let verifier = client.id_token_verifier().set_allowed_algs(ALGORITHMS);
            id_token.claims(&verifier, nonce).map(|_| ())
        };
        match verify(client) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey | SignatureVerificationError::AmbiguousKeyId(_),
            )) => verify(&self.client(self.metadata(true).await?)).map_err(|e| OidcError::IdToken(chain(&e))),
            r => r.map_err(|e| OidcError::IdToken(chain(&e))),
        }
    }

    /// The configured claims of a verified ID token. Its signature covers the payload, so the
    /// payload is read again as JSON for claims the crate does not model (`groups`, custom ids).
    fn identity(&self, id_token: &CoreIdToken) -> Result<Identity, OidcError> {
        let jwt = id_token.to_string();
        let payload = jwt.split('.').nth(1).ok_or_else(|| OidcError::IdToken("not a compact JWS".into()))?;
        let claims: serde_json::Map<String, serde_json::Value> = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| OidcError::IdToken("the payload is not a JSON object".into()))?;
        identity_from_claims(&self.inner.config, &claims)
    }
}
