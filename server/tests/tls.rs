//! TLS and mutual TLS on the gRPC port, with a CA and certificates the test generates: a client
//! with a certificate from the trusted CA gets through (and still needs its bearer token); no
//! certificate, a certificate from another CA, or plaintext do not.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use ferry_proto::v1 as pb;
use ferry_server::config::TlsConfig;
use ferry_testkit::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// A certificate authority that signs leaf certificates for `localhost`.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// (certificate PEM, key PEM) for `localhost`.
    fn leaf(&self, name: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

async fn tls_channel(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    identity: Option<&(String, String)>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await
}

/// Whether a call over `channel` (if it connected at all) reaches the service.
async fn list_succeeds(channel: Result<Channel, tonic::transport::Error>, token: &str) -> bool {
    let Ok(channel) = channel else {
        return false;
    };
    client_on(channel, Some(token))
        .list_datasets(pb::ListDatasetsRequest::default())
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_admits_only_clients_with_a_trusted_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Ferry test CA");
    let (server_cert, server_key) = ca.leaf("ferry-server");
    let tls = TlsConfig {
        cert_file: write(certs.path(), "server.pem", &server_cert),
        key_file: write(certs.path(), "server.key", &server_key),
        client_ca_file: Some(write(certs.path(), "ca.pem", &ca.pem)),
    };
    let server = TestServer::start_configured(None, |config| config.tls = Some(tls)).await;
    let token = server.tokens[OWNER].clone();

    let trusted_client = ca.leaf("team-catalog");
    assert!(
        list_succeeds(
            tls_channel(server.addr, &ca.pem, Some(&trusted_client)).await,
            &token
        )
        .await,
        "a client with a certificate from the trusted CA is served"
    );

    // mTLS does not replace authentication: the bearer token is still required.
    let channel = tls_channel(server.addr, &ca.pem, Some(&trusted_client))
        .await
        .unwrap();
    let status = client_on(channel, None)
        .list_datasets(pb::ListDatasetsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);

    assert!(
        !list_succeeds(tls_channel(server.addr, &ca.pem, None).await, &token).await,
        "a client without a certificate is refused"
    );
    let stranger = TestCa::new("Someone else's CA").leaf("intruder");
    assert!(
        !list_succeeds(
            tls_channel(server.addr, &ca.pem, Some(&stranger)).await,
            &token
        )
        .await,
        "a certificate from another CA is refused"
    );
    let plaintext = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await;
    assert!(
        !list_succeeds(plaintext, &token).await,
        "plaintext is refused"
    );
    server.stop().await;
}

#[tokio::test]
async fn unreadable_tls_files_fail_at_start_with_the_path() {
    let scratch = tempfile::tempdir().unwrap();
    let mut config = config(&scratch.path().join("data"), None);
    config.tls = Some(TlsConfig {
        cert_file: scratch.path().join("missing.pem"),
        key_file: scratch.path().join("missing.key"),
        client_ca_file: None,
    });
    let error = ferry_server::server::BoundServer::bind(&config)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("tls.cert_file") && error.contains("missing.pem"),
        "{error}"
    );
}
