//! OIDC/JWT bearer tokens, so GCP service accounts (and any OIDC workload identity) can call
//! Ferry without a Ferry token. Signatures are checked against the issuer's JWKS; only
//! asymmetric algorithms are accepted, so a public key can never be used as an HMAC secret.
//!
//! A valid signature is not enough: each issuer lists the identities it may vouch for
//! (subjects, verified emails, Workspace domains), because a Google ID token from *any* Google
//! account carries Google's signature. `exp` and `nbf` are checked with a bounded leeway, and an
//! unknown key id re-reads the JWKS (at most once per `jwks_refresh_secs`), so key rotation
//! needs no restart and a stream of made-up key ids costs no more than one read per interval.

use std::path::Path;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Map, Value};

use crate::error::FerryError;

use super::authn::OidcIssuer;
use super::validate_principal;

/// The longest clock skew an issuer may be configured to tolerate.
const MAX_LEEWAY_SECS: u64 = 300;

struct TrustedIssuer {
    config: OidcIssuer,
    keys: RwLock<JwkSet>,
    /// When the JWKS was last re-read for an unknown key id (None: not yet).
    last_refresh: Mutex<Option<Instant>>,
}

pub struct OidcVerifier {
    issuers: Vec<TrustedIssuer>,
}

/// Ferry's own tokens never contain dots; a JWT is three base64url parts.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

fn rejected(reason: impl std::fmt::Display) -> FerryError {
    FerryError::Unauthenticated(format!("JWT rejected: {reason}"))
}

fn read_jwks(config: &OidcIssuer, path: &Path) -> Result<JwkSet, FerryError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        FerryError::Config(format!(
            "auth.oidc issuer {}: cannot read {}: {e}",
            config.issuer,
            path.display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        FerryError::Config(format!(
            "auth.oidc issuer {}: {} is not a JWKS: {e}",
            config.issuer,
            path.display()
        ))
    })
}

impl TrustedIssuer {
    fn load(config: &OidcIssuer) -> Result<Self, FerryError> {
        let invalid = |reason: &str| {
            FerryError::Config(format!("auth.oidc issuer {}: {reason}", config.issuer))
        };
        let path = config
            .jwks_file
            .as_ref()
            .ok_or_else(|| invalid("jwks_file is required"))?;
        if config.allowed_subjects.is_empty()
            && config.allowed_emails.is_empty()
            && config.allowed_domains.is_empty()
        {
            return Err(invalid(
                "list the identities it may vouch for (allowed_subjects, allowed_emails or \
                 allowed_domains); a signature alone admits every account of the issuer",
            ));
        }
        if config.leeway_secs > MAX_LEEWAY_SECS {
            return Err(invalid(&format!(
                "leeway_secs is at most {MAX_LEEWAY_SECS}"
            )));
        }
        Ok(Self {
            keys: RwLock::new(read_jwks(config, path)?),
            config: config.clone(),
            last_refresh: Mutex::new(None),
        })
    }

    fn key(&self, kid: &str) -> Option<Jwk> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .find(kid)
            .cloned()
    }

    /// Re-reads the JWKS unless it was read within the refresh interval; a file that no longer
    /// parses keeps the keys in force.
    fn refresh(&self) {
        let mut last = self.last_refresh.lock().unwrap_or_else(|p| p.into_inner());
        let interval = Duration::from_secs(self.config.jwks_refresh_secs);
        if last.is_some_and(|at| at.elapsed() < interval) {
            return;
        }
        *last = Some(Instant::now());
        let Some(path) = &self.config.jwks_file else {
            return;
        };
        match read_jwks(&self.config, path) {
            Ok(keys) => *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys,
            Err(e) => tracing::warn!(error = %e, "keeping the previous JWKS"),
        }
    }

    /// Whether the verified claims name an identity this issuer may vouch for.
    fn admits(&self, claims: &Map<String, Value>) -> bool {
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        let email_verified = email_verified(claims);
        let config = &self.config;
        text("sub").is_some_and(|sub| config.allowed_subjects.iter().any(|s| s == sub))
            || (email_verified
                && text("email").is_some_and(|email| {
                    config
                        .allowed_emails
                        .iter()
                        .any(|allowed| allowed.eq_ignore_ascii_case(email))
                }))
            || (email_verified
                && text("hd").is_some_and(|hd| {
                    config
                        .allowed_domains
                        .iter()
                        .any(|allowed| allowed.eq_ignore_ascii_case(hd))
                }))
    }
}

/// Google sends `email_verified` as a boolean; some issuers as the string `"true"`.
fn email_verified(claims: &Map<String, Value>) -> bool {
    matches!(claims.get("email_verified"), Some(Value::Bool(true)))
        || claims.get("email_verified").and_then(Value::as_str) == Some("true")
}

impl OidcVerifier {
    pub fn new(issuers: &[OidcIssuer]) -> Result<Self, FerryError> {
        let issuers = issuers
            .iter()
            .map(TrustedIssuer::load)
            .collect::<Result<_, FerryError>>()?;
        Ok(Self { issuers })
    }

    fn find_key(&self, kid: &str) -> Option<(&TrustedIssuer, Jwk)> {
        let find = || {
            self.issuers
                .iter()
                .find_map(|i| i.key(kid).map(|key| (i, key)))
        };
        find().or_else(|| {
            // Perhaps the issuer rotated its keys since the file was read.
            self.issuers.iter().for_each(TrustedIssuer::refresh);
            find()
        })
    }

    pub fn verify(&self, token: &str) -> Result<String, FerryError> {
        if self.issuers.is_empty() {
            return Err(rejected("no OIDC issuer is configured on this server"));
        }
        let header = decode_header(token).map_err(|_| rejected("malformed token"))?;
        if matches!(
            header.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err(rejected("symmetric algorithms are not accepted"));
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| rejected("the token names no key (kid)"))?;
        let (issuer, jwk) = self
            .find_key(kid)
            .ok_or_else(|| rejected("signed by a key no trusted issuer publishes"))?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| rejected("unusable issuer key"))?;
        let config = &issuer.config;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = config.leeway_secs;
        let claims = decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| rejected(format!("{:?}", e.kind())))?
            .claims;
        if let Some(party) = &config.authorized_party
            && claims.get("azp").and_then(Value::as_str) != Some(party.as_str())
        {
            return Err(rejected("issued to another client (azp)"));
        }
        if !issuer.admits(&claims) {
            return Err(rejected(
                "the identity is not one this server admits for its issuer",
            ));
        }
        let name = claims
            .get(&config.principal_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| rejected(format!("the {} claim is missing", config.principal_claim)))?;
        // An unverified address must not name the principal, whatever admitted the token.
        if config.principal_claim == "email" && !email_verified(&claims) {
            return Err(rejected("the email claim is not verified"));
        }
        let principal = format!("{}{name}", config.principal_prefix);
        validate_principal(&principal).map_err(|_| rejected("the principal claim is malformed"))?;
        Ok(principal)
    }
}
