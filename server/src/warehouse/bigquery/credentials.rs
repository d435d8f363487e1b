//! One token source for everything Ferry sends to BigQuery: the typed client and the raw REST
//! calls the client does not model (resumable uploads, sessions, dataset `access`).

use std::sync::Arc;

use async_trait::async_trait;
use gcp_bigquery_client::auth::Authenticator;
use gcp_bigquery_client::error::BQError;
use gcp_bigquery_client::yup_oauth2;
use gcp_bigquery_client::yup_oauth2::authenticator::{
    ApplicationDefaultCredentialsTypes, DefaultAuthenticator,
};

use super::config::{BigQueryConfig, Credentials};
use crate::error::FerryError;

const BIGQUERY_SCOPE: &str = "https://www.googleapis.com/auth/bigquery";

#[derive(Clone)]
enum Source {
    OAuth(DefaultAuthenticator),
    Anonymous,
}

/// Access tokens for Ferry's own identity, cached and refreshed by yup-oauth2.
#[derive(Clone)]
pub struct TokenSource {
    source: Source,
    described: &'static str,
}

impl TokenSource {
    /// Builds the token source without calling Google: a server with no network route to GCP
    /// still starts, and its first BigQuery call says why it cannot authenticate.
    pub async fn new(config: &BigQueryConfig) -> Result<Self, FerryError> {
        let unusable = |what: &str, e: std::io::Error| {
            FerryError::Config(format!("warehouse.bigquery credentials ({what}): {e}"))
        };
        let (source, described) = match config.credentials {
            Credentials::None => (Source::Anonymous, "no credentials (emulator)"),
            Credentials::ServiceAccountKey => {
                let path = config.key_file.clone().unwrap_or_default();
                let key = yup_oauth2::read_service_account_key(&path)
                    .await
                    .map_err(|e| unusable(&format!("key file {}", path.display()), e))?;
                let auth = yup_oauth2::ServiceAccountAuthenticator::builder(key)
                    .build()
                    .await
                    .map_err(|e| unusable("service-account key", e))?;
                (Source::OAuth(auth), "a service-account key file")
            }
            Credentials::ApplicationDefault | Credentials::WorkloadIdentity => {
                let user_credentials = application_default_user_credentials().await;
                let auth = match (user_credentials, config.credentials) {
                    (Some(secret), Credentials::ApplicationDefault) => {
                        yup_oauth2::AuthorizedUserAuthenticator::builder(secret)
                            .build()
                            .await
                    }
                    _ => match yup_oauth2::ApplicationDefaultCredentialsAuthenticator::builder(
                        yup_oauth2::ApplicationDefaultCredentialsFlowOpts::default(),
                    )
                    .await
                    {
                        ApplicationDefaultCredentialsTypes::ServiceAccount(builder)
                            if config.credentials == Credentials::ApplicationDefault =>
                        {
                            builder.build().await
                        }
                        ApplicationDefaultCredentialsTypes::ServiceAccount(_) => {
                            return Err(FerryError::Config(
                                "warehouse.bigquery.credentials = \"workload-identity\" but \
                                 GOOGLE_APPLICATION_CREDENTIALS names a key file: unset it, or use \
                                 \"service-account-key\""
                                    .into(),
                            ));
                        }
                        ApplicationDefaultCredentialsTypes::InstanceMetadata(builder) => {
                            builder.build().await
                        }
                    },
                }
                .map_err(|e| unusable("application default credentials", e))?;
                let described = if config.credentials == Credentials::WorkloadIdentity {
                    "workload identity (the metadata server)"
                } else {
                    "application default credentials"
                };
                (Source::OAuth(auth), described)
            }
        };
        Ok(Self { source, described })
    }

    /// A bearer token, or `None` for an emulator.
    pub async fn token(&self) -> Result<Option<String>, FerryError> {
        match &self.source {
            Source::Anonymous => Ok(None),
            Source::OAuth(auth) => {
                let token = auth.token(&[BIGQUERY_SCOPE]).await.map_err(|e| {
                    FerryError::WarehouseUnavailable(format!(
                        "cannot authenticate to BigQuery with {}: {e}",
                        self.described
                    ))
                })?;
                token.token().map(|t| Some(t.to_owned())).ok_or_else(|| {
                    FerryError::WarehouseUnavailable(format!(
                        "{} returned no access token",
                        self.described
                    ))
                })
            }
        }
    }

    pub fn for_client(&self) -> Arc<dyn Authenticator> {
        Arc::new(self.clone())
    }
}

/// gcloud's `application-default login` writes user credentials, which yup-oauth2's ADC flow
/// does not read; honour them as Google's own client libraries do.
async fn application_default_user_credentials()
-> Option<yup_oauth2::authorized_user::AuthorizedUserSecret> {
    let path = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| {
                std::path::PathBuf::from(home)
                    .join(".config/gcloud/application_default_credentials.json")
            })
        })?;
    let text = tokio::fs::read_to_string(path).await.ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    if value.get("type")?.as_str()? != "authorized_user" {
        return None;
    }
    serde_json::from_value(value).ok()
}

#[async_trait]
impl Authenticator for TokenSource {
    async fn access_token(&self) -> Result<String, BQError> {
        match self.token().await {
            Ok(token) => Ok(token.unwrap_or_default()),
            Err(e) => Err(BQError::ConnectionPoolError(e.to_string())),
        }
    }
}
