//! OIDC/JWT callers (e.g. GCP service accounts), with keys this test generates: a good token
//! acts for the team its service account belongs to; a bad signature, a wrong audience or an
//! expired token is UNAUTHENTICATED and audited.

#![allow(clippy::unwrap_used)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ferry_proto::v1 as pb;
use ferry_server::governance::OidcIssuer;
use ferry_testkit::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use ring::signature::{Ed25519KeyPair, KeyPair};
use tonic::Code;

const ISSUER: &str = "https://accounts.example.test";
const AUDIENCE: &str = "https://ferry.example.test";
const SERVICE_ACCOUNT: &str = "catalog-loader@proj.iam.gserviceaccount.com";

struct SigningKey {
    kid: String,
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

impl SigningKey {
    fn generate(kid: &str) -> Self {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Self {
            kid: kid.into(),
            pkcs8: pkcs8.as_ref().to_vec(),
            public: pair.public_key().as_ref().to_vec(),
        }
    }

    fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
            "kid": self.kid, "x": URL_SAFE_NO_PAD.encode(&self.public),
        })
    }

    fn sign(&self, audience: &str, expires_in: i64) -> String {
        self.sign_claims(audience, expires_in, |_| {})
    }

    /// A token for the service account, its claims adjusted by `adjust`.
    fn sign_claims(
        &self,
        audience: &str,
        expires_in: i64,
        adjust: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
    ) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let now = chrono::Utc::now().timestamp();
        let mut claims = serde_json::json!({
            "iss": ISSUER, "aud": audience, "email": SERVICE_ACCOUNT, "email_verified": true,
            "sub": "108234567890", "iat": now, "exp": now + expires_in,
        })
        .as_object()
        .unwrap()
        .clone();
        adjust(&mut claims);
        encode(&header, &claims, &EncodingKey::from_ed_der(&self.pkcs8)).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn service_account_jwts_are_verified_against_the_issuers_keys() {
    let trusted = SigningKey::generate("key-1");
    // Same key id, different key: what a forger would try.
    let forger = SigningKey::generate("key-1");
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(
        &jwks,
        serde_json::json!({ "keys": [trusted.jwk()] }).to_string(),
    )
    .unwrap();
    // The service account acts for the catalog team: one line in a copy of the policies.
    let policy_dir = write_test_policies(
        dir.path(),
        &[format!("g, sa:{SERVICE_ACCOUNT}, team:catalog")],
    );
    let server = TestServer::start_configured(None, |c| {
        c.policy_dir = Some(policy_dir);
        c.auth.oidc = vec![OidcIssuer {
            jwks_file: Some(jwks.clone()),
            allowed_emails: vec![SERVICE_ACCOUNT.into()],
            // Long enough that the second rotation below falls inside it.
            jwks_refresh_secs: 3600,
            ..OidcIssuer::new(ISSUER, AUDIENCE)
        }];
    })
    .await;

    let mut service_account =
        connect_with_token(server.addr, Some(&trusted.sign(AUDIENCE, 300))).await;
    register_catalog(&mut service_account).await;
    let source = write_file(server.scratch(), "day1.csv", DAY_1);
    let published = publish(&mut service_account, RAW, "2021-04-03", &source)
        .await
        .unwrap();
    assert_eq!(
        published.publication.unwrap().published_by,
        format!("sa:{SERVICE_ACCOUNT}")
    );

    for (token, what) in [
        (forger.sign(AUDIENCE, 300), "InvalidSignature"),
        (
            trusted.sign("https://someone-else.test", 300),
            "InvalidAudience",
        ),
        (trusted.sign(AUDIENCE, -600), "ExpiredSignature"),
        // A valid signature from the issuer, for an account nobody listed.
        (
            trusted.sign_claims(AUDIENCE, 300, |c| {
                c.insert("email".into(), "someone@gmail.com".into());
            }),
            "not one this server admits",
        ),
        (
            trusted.sign_claims(AUDIENCE, 300, |c| {
                c.insert("email_verified".into(), false.into());
            }),
            "not one this server admits",
        ),
        (
            trusted.sign_claims(AUDIENCE, 300, |c| {
                let later = chrono::Utc::now().timestamp() + 600;
                c.insert("nbf".into(), later.into());
            }),
            "ImmatureSignature",
        ),
    ] {
        let mut client = connect_with_token(server.addr, Some(&token)).await;
        let status = client
            .list_datasets(pb::ListDatasetsRequest::default())
            .await
            .unwrap_err();
        assert_reason(&status, "UNAUTHENTICATED");
        assert_eq!(status.code(), Code::Unauthenticated, "{what}");
        assert!(status.message().contains(what), "{}", status.message());
        assert!(!status.message().contains(&token));
    }

    // The issuer rotates its key: the first unknown key id re-reads the JWKS...
    let rotated = SigningKey::generate("key-2");
    std::fs::write(
        &jwks,
        serde_json::json!({ "keys": [trusted.jwk(), rotated.jwk()] }).to_string(),
    )
    .unwrap();
    let mut after_rotation =
        connect_with_token(server.addr, Some(&rotated.sign(AUDIENCE, 300))).await;
    after_rotation
        .list_datasets(pb::ListDatasetsRequest::default())
        .await
        .unwrap();
    // ...and within jwks_refresh_secs a made-up key id costs no read: a key added since then
    // is not seen yet.
    let again = SigningKey::generate("key-3");
    std::fs::write(
        &jwks,
        serde_json::json!({ "keys": [trusted.jwk(), rotated.jwk(), again.jwk()] }).to_string(),
    )
    .unwrap();
    let mut too_soon = connect_with_token(server.addr, Some(&again.sign(AUDIENCE, 300))).await;
    let status = too_soon
        .list_datasets(pb::ListDatasetsRequest::default())
        .await
        .unwrap_err();
    assert_reason(&status, "UNAUTHENTICATED");
    assert_eq!(status.code(), Code::Unauthenticated);

    let events = server
        .client_as(ADMIN)
        .await
        .list_audit_events(pb::ListAuditEventsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .events;
    let rejected = events
        .iter()
        .filter(|e| e.action == "authenticate" && e.outcome == "denied")
        .count();
    assert_eq!(
        rejected, 0,
        "bad tokens are counted, not audited one row each"
    );
    assert!(
        events
            .iter()
            .any(|e| e.principal == format!("sa:{SERVICE_ACCOUNT}") && e.action == "publish")
    );
    server.stop().await;
}
