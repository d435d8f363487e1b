//! OIDC/JWT bearer tokens, so GCP service accounts (and any OIDC workload identity) can call
//! Ferry without a Ferry token. Signatures are checked against the issuer's JWKS; only
//! asymmetric algorithms are accepted, so a public key can never be used as an HMAC secret.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};

use crate::error::FerryError;

use super::authn::OidcIssuer;
use super::validate_principal;

struct TrustedIssuer {
    config: OidcIssuer,
    keys: JwkSet,
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

impl OidcVerifier {
    pub fn new(issuers: &[OidcIssuer]) -> Result<Self, FerryError> {
        let issuers = issuers
            .iter()
            .map(|config| {
                let path = config.jwks_file.as_ref().ok_or_else(|| {
                    FerryError::InvalidArgument(format!(
                        "auth.oidc issuer {}: jwks_file is required",
                        config.issuer
                    ))
                })?;
                let text = std::fs::read_to_string(path).map_err(|e| {
                    FerryError::InvalidArgument(format!(
                        "auth.oidc issuer {}: cannot read {}: {e}",
                        config.issuer,
                        path.display()
                    ))
                })?;
                let keys: JwkSet = serde_json::from_str(&text).map_err(|e| {
                    FerryError::InvalidArgument(format!(
                        "auth.oidc issuer {}: {} is not a JWKS: {e}",
                        config.issuer,
                        path.display()
                    ))
                })?;
                Ok(TrustedIssuer {
                    config: config.clone(),
                    keys,
                })
            })
            .collect::<Result<_, FerryError>>()?;
        Ok(Self { issuers })
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
            .issuers
            .iter()
            .find_map(|i| i.keys.find(kid).map(|k| (i, k)))
            .ok_or_else(|| rejected("signed by a key no trusted issuer publishes"))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|_| rejected("unusable issuer key"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&issuer.config.issuer]);
        validation.set_audience(&[&issuer.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &validation)
            .map_err(|e| rejected(format!("{:?}", e.kind())))?
            .claims;
        let name = claims
            .get(&issuer.config.principal_claim)
            .and_then(|v| v.as_str())
            .ok_or_else(|| {
                rejected(format!(
                    "the {} claim is missing",
                    issuer.config.principal_claim
                ))
            })?;
        let principal = format!("{}{name}", issuer.config.principal_prefix);
        validate_principal(&principal).map_err(|_| rejected("the principal claim is malformed"))?;
        Ok(principal)
    }
}
