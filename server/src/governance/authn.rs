//! Authentication: a bearer token in, a principal out. Ferry's own tokens are looked up by
//! digest in the registry; the bootstrap admin token comes from configuration.

use std::path::PathBuf;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::error::FerryError;
use crate::secret::Secret;

use super::tokens::{TokenRecord, hash_token};
use super::validate_principal;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The first admin's token, to create every other token with. Prefer the environment
    /// (`FERRY_AUTH__BOOTSTRAP_ADMIN_TOKEN`) or a file to writing it in the config file.
    pub bootstrap_admin_token: Option<Secret>,
    pub bootstrap_admin_token_file: Option<PathBuf>,
    /// The principal the bootstrap token acts as; `policies/policy.csv` makes it an admin.
    pub bootstrap_admin_principal: String,
    /// OIDC issuers whose JWTs are accepted (e.g. Google for GCP service accounts).
    pub oidc: Vec<OidcIssuer>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            bootstrap_admin_token: None,
            bootstrap_admin_token_file: None,
            bootstrap_admin_principal: "admin:platform".into(),
            oidc: Vec::new(),
        }
    }
}

/// A trusted OIDC issuer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcIssuer {
    /// The `iss` claim, e.g. `https://accounts.google.com`.
    pub issuer: String,
    /// The `aud` claim Ferry requires, e.g. its own URL.
    pub audience: String,
    /// A JWKS document on disk (mounted from a ConfigMap, or written by a test).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The claim naming the caller; Google puts the service account in `email`.
    #[serde(default = "OidcIssuer::default_claim")]
    pub principal_claim: String,
    /// Prepended to the claim to form the principal, e.g. `sa:` + the service account email.
    #[serde(default = "OidcIssuer::default_prefix")]
    pub principal_prefix: String,
    /// The identities this issuer may vouch for; a token matching none is UNAUTHENTICATED, so
    /// a valid token from an account nobody listed never gets in. `sub` values...
    #[serde(default)]
    pub allowed_subjects: Vec<String>,
    /// ...verified `email` values (`email_verified` must be true)...
    #[serde(default)]
    pub allowed_emails: Vec<String>,
    /// ...or Google Workspace domains (the `hd` claim, with a verified email).
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// When set, the `azp` claim (the client the token was issued to) must equal it.
    #[serde(default)]
    pub authorized_party: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds (at most 300).
    #[serde(default = "OidcIssuer::default_leeway")]
    pub leeway_secs: u64,
    /// A token with an unknown key id re-reads `jwks_file`, at most once per this many seconds.
    #[serde(default = "OidcIssuer::default_jwks_refresh")]
    pub jwks_refresh_secs: u64,
}

impl OidcIssuer {
    fn default_claim() -> String {
        "email".into()
    }
    fn default_prefix() -> String {
        "sa:".into()
    }
    fn default_leeway() -> u64 {
        30
    }
    fn default_jwks_refresh() -> u64 {
        30
    }

    /// A trusted issuer with no allow-list yet and the default claim, prefix and leeway.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_file: None,
            principal_claim: Self::default_claim(),
            principal_prefix: Self::default_prefix(),
            allowed_subjects: Vec::new(),
            allowed_emails: Vec::new(),
            allowed_domains: Vec::new(),
            authorized_party: None,
            leeway_secs: Self::default_leeway(),
            jwks_refresh_secs: Self::default_jwks_refresh(),
        }
    }
}

/// Who a credential speaks for and, for a token Ferry issued, who minted it: separation of
/// duties looks through a token to the principal that created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub principal: String,
    pub minted_by: Option<String>,
}

impl Identity {
    fn of(principal: String) -> Self {
        Self {
            principal,
            minted_by: None,
        }
    }
}

/// Where Ferry tokens are kept, by the SHA-256 of the token (the registry; governance does not
/// depend on it, the registry implements this).
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync {
    async fn token_by_hash(&self, sha256: &str) -> Result<Option<TokenRecord>, FerryError>;
}

pub struct Authenticator {
    tokens: std::sync::Arc<dyn TokenStore>,
    /// Digest and principal of the bootstrap admin token.
    bootstrap: Option<(String, String)>,
    oidc: super::oidc::OidcVerifier,
}

const MISSING: &str = "authentication required: send `authorization: Bearer <token>` (the CLI reads --token or FERRY_TOKEN)";
const INVALID: &str = "the bearer token is invalid, expired or revoked";

impl Authenticator {
    pub fn new(
        tokens: std::sync::Arc<dyn TokenStore>,
        config: &AuthConfig,
    ) -> Result<Self, FerryError> {
        let token = match (
            &config.bootstrap_admin_token,
            &config.bootstrap_admin_token_file,
        ) {
            (Some(token), _) => Some(token.expose().trim().to_owned()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        FerryError::Config(format!(
                            "cannot read auth.bootstrap_admin_token_file {}: {e}",
                            path.display()
                        ))
                    })?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        let bootstrap = match token {
            Some(token) if token.len() < 24 => {
                return Err(FerryError::Config(
                    "auth.bootstrap_admin_token must be at least 24 characters".into(),
                ));
            }
            Some(token) => {
                validate_principal(&config.bootstrap_admin_principal)?;
                Some((hash_token(&token), config.bootstrap_admin_principal.clone()))
            }
            None => None,
        };
        Ok(Self {
            tokens,
            bootstrap,
            oidc: super::oidc::OidcVerifier::new(&config.oidc)?,
        })
    }

    /// Resolves an `authorization` header value to the caller's identity.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Identity, FerryError> {
        let token = authorization
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| FerryError::Unauthenticated(MISSING.into()))?;
        if super::oidc::looks_like_jwt(token) {
            return self.oidc.verify(token).map(Identity::of);
        }
        let digest = hash_token(token);
        if let Some((bootstrap, principal)) = &self.bootstrap
            && *bootstrap == digest
        {
            return Ok(Identity::of(principal.clone()));
        }
        let record = self
            .tokens
            .token_by_hash(&digest)
            .await?
            .ok_or_else(|| FerryError::Unauthenticated(INVALID.into()))?;
        let now = Utc::now();
        if record.revoked_at.is_some() || record.expires_at.is_some_and(|t| t <= now) {
            return Err(FerryError::Unauthenticated(INVALID.into()));
        }
        Ok(Identity {
            principal: record.principal,
            minted_by: Some(record.created_by),
        })
    }
}
