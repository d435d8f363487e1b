//! Thin gRPC adapters: proto in, domain call, proto out. Errors become statuses in `status.rs`.

pub mod convert;
mod quality;
mod rpc_telemetry;
mod status;

pub use rpc_telemetry::RpcTelemetryLayer;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ferry_proto::v1 as pb;
use ferry_proto::v1::ferry_service_server::FerryService;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::contract::Contract;
use crate::error::FerryError;
use crate::ingest::IngestProgress;
use crate::registry::AuditQuery;
use crate::service::{Caller, Ferry, PublishRequest, ReadRequest, TokenRequest};

/// How often a running publish reports progress.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);
/// Rows per ReadRows message; the wide catalog rows keep this well under gRPC's 4 MB limit.
const ROWS_PER_MESSAGE: usize = 512;

pub struct FerryGrpc {
    ferry: Arc<Ferry>,
}

impl FerryGrpc {
    pub fn new(ferry: Arc<Ferry>) -> Self {
        Self { ferry }
    }
}

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Names the dataset on the RPC span (never a token or a row value).
fn record_dataset(dataset: &str) {
    if !dataset.is_empty() {
        tracing::Span::current().record("ferry.dataset", dataset);
    }
}

/// Request ids are echoed into the audit log, so only short, plain ones are taken from clients.
fn request_id<T>(request: &Request<T>) -> String {
    request
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 128
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        })
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

impl FerryGrpc {
    /// Authenticates the call and names the principal on the RPC span.
    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let caller = self
            .ferry
            .authenticate(authorization, &request_id(request))
            .await?;
        tracing::Span::current().record("ferry.principal", caller.principal.as_str());
        Ok(caller)
    }
}

#[tonic::async_trait]
impl FerryService for FerryGrpc {
    async fn register_dataset(
        &self,
        request: Request<pb::RegisterDatasetRequest>,
    ) -> Result<Response<pb::RegisterDatasetResponse>, Status> {
        let caller = self.caller(&request).await?;
        let contract = match request.into_inner().contract_source {
            Some(pb::register_dataset_request::ContractSource::Contract(c)) => {
                convert::contract_from_pb(c)?
            }
            Some(pb::register_dataset_request::ContractSource::ContractYaml(yaml)) => {
                Contract::from_yaml(&yaml)?
            }
            None => {
                return Err(FerryError::invalid_field(
                    "contract_source",
                    "a contract or contract_yaml is required",
                )
                .into());
            }
        };
        record_dataset(&contract.name);
        let outcome = self.ferry.register_dataset(contract, &caller).await?;
        let (_, partitions) = self
            .ferry
            .get_dataset(&outcome.dataset.contract.name, &caller)
            .await?;
        Ok(Response::new(pb::RegisterDatasetResponse {
            dataset: Some(convert::dataset_to_pb(&outcome.dataset, &partitions)),
            unchanged: outcome.unchanged,
            changes: outcome.changes,
        }))
    }

    async fn get_dataset(
        &self,
        request: Request<pb::GetDatasetRequest>,
    ) -> Result<Response<pb::Dataset>, Status> {
        let caller = self.caller(&request).await?;
        let name = request.into_inner().name;
        record_dataset(&name);
        let (dataset, partitions) = self.ferry.get_dataset(&name, &caller).await?;
        Ok(Response::new(convert::dataset_to_pb(&dataset, &partitions)))
    }

    async fn list_datasets(
        &self,
        request: Request<pb::ListDatasetsRequest>,
    ) -> Result<Response<pb::ListDatasetsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let datasets = self
            .ferry
            .list_datasets(&request.into_inner().name_prefix, &caller)
            .await?;
        Ok(Response::new(pb::ListDatasetsResponse {
            datasets: datasets
                .iter()
                .map(|d| convert::dataset_to_pb(d, &[]))
                .collect(),
        }))
    }

    async fn list_feeds(
        &self,
        request: Request<pb::ListFeedsRequest>,
    ) -> Result<Response<pb::ListFeedsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let feeds = self
            .ferry
            .list_feeds(&request.into_inner().name_prefix, &caller)
            .await?;
        Ok(Response::new(pb::ListFeedsResponse {
            feeds: feeds.into_iter().map(convert::feed_status_to_pb).collect(),
        }))
    }

    type PublishPartitionStream = EventStream<pb::PublishPartitionEvent>;

    async fn publish_partition(
        &self,
        request: Request<pb::PublishPartitionRequest>,
    ) -> Result<Response<Self::PublishPartitionStream>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        record_dataset(&request.dataset);
        let request = PublishRequest {
            dataset: request.dataset,
            partition_date: request.partition_date,
            source_uri: request.source_uri,
            expected_sha256: request.expected_sha256,
        };
        let progress = Arc::new(IngestProgress::default());
        let ferry = self.ferry.clone();
        let task_progress = progress.clone();
        // The publish runs to completion even if the client goes away, so a partition is never
        // left to a dropped future.
        let mut publish = tokio::spawn(
            async move { ferry.publish(request, &caller, task_progress).await }
                .instrument(tracing::Span::current()),
        );

        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
            ticker.tick().await;
            let result = loop {
                tokio::select! {
                    result = &mut publish => break result,
                    _ = ticker.tick() => {
                        let event = pb::PublishPartitionEvent {
                            event: Some(pb::publish_partition_event::Event::Progress(pb::PublishProgress {
                                stage: progress.stage().name().into(),
                                bytes_read: progress.bytes_read.load(Ordering::Relaxed),
                                total_bytes: progress.total_bytes.load(Ordering::Relaxed),
                                rows_validated: progress.rows(),
                            })),
                        };
                        // A gone client does not stop the publish.
                        let _ = tx.send(Ok(event)).await;
                    }
                }
            };
            let message = match result {
                Ok(Ok(outcome)) => Ok(pb::PublishPartitionEvent {
                    event: Some(pb::publish_partition_event::Event::Result(
                        pb::PublishResult {
                            publication: Some(convert::publication_to_pb(&outcome.publication)),
                            unchanged: outcome.unchanged,
                        },
                    )),
                }),
                Ok(Err(error)) => Err(Status::from(error)),
                Err(join) => Err(Status::from(FerryError::Internal(format!(
                    "publish task failed: {join}"
                )))),
            };
            let _ = tx.send(message).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_publication(
        &self,
        request: Request<pb::GetPublicationRequest>,
    ) -> Result<Response<pb::Publication>, Status> {
        let caller = self.caller(&request).await?;
        let publication = self
            .ferry
            .get_publication(&request.into_inner().id, &caller)
            .await?;
        Ok(Response::new(convert::publication_to_pb(&publication)))
    }

    async fn list_publications(
        &self,
        request: Request<pb::ListPublicationsRequest>,
    ) -> Result<Response<pb::ListPublicationsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        record_dataset(&request.dataset);
        let publications = self
            .ferry
            .list_publications(
                &request.dataset,
                &request.partition_date,
                request.limit,
                &caller,
            )
            .await?;
        Ok(Response::new(pb::ListPublicationsResponse {
            publications: publications
                .iter()
                .map(convert::publication_to_pb)
                .collect(),
        }))
    }

    async fn grant_access(
        &self,
        request: Request<pb::GrantAccessRequest>,
    ) -> Result<Response<pb::Grant>, Status> {
        let caller = self.caller(&request).await?;
        let request = convert::new_grant_from_pb(request.into_inner())?;
        record_dataset(&request.target);
        let grant = self.ferry.grant_access(request, &caller).await?;
        Ok(Response::new(convert::grant_to_pb(&grant)))
    }

    async fn revoke_access(
        &self,
        request: Request<pb::RevokeAccessRequest>,
    ) -> Result<Response<pb::Grant>, Status> {
        let caller = self.caller(&request).await?;
        let grant = self
            .ferry
            .revoke_access(&request.into_inner().grant_id, &caller)
            .await?;
        Ok(Response::new(convert::grant_to_pb(&grant)))
    }

    async fn approve_grant(
        &self,
        request: Request<pb::ApproveGrantRequest>,
    ) -> Result<Response<pb::Grant>, Status> {
        let caller = self.caller(&request).await?;
        let grant = self
            .ferry
            .approve_grant(&request.into_inner().grant_id, &caller)
            .await?;
        Ok(Response::new(convert::grant_to_pb(&grant)))
    }

    async fn list_grants(
        &self,
        request: Request<pb::ListGrantsRequest>,
    ) -> Result<Response<pb::ListGrantsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let grants = self
            .ferry
            .list_grants(
                &request.target,
                &request.grantee,
                request.include_inactive,
                &caller,
            )
            .await?;
        Ok(Response::new(pb::ListGrantsResponse {
            grants: grants.iter().map(convert::grant_to_pb).collect(),
        }))
    }

    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let issued = self
            .ferry
            .create_token(
                TokenRequest {
                    principal: request.principal.trim().to_owned(),
                    description: request.description,
                    expires_at: convert::time_from_pb(request.expires_at)?,
                },
                &caller,
            )
            .await?;
        Ok(Response::new(pb::CreateTokenResponse {
            token: Some(convert::token_to_pb(&issued.record)),
            secret: issued.secret,
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::TokenInfo>, Status> {
        let caller = self.caller(&request).await?;
        let token = self
            .ferry
            .revoke_token(&request.into_inner().id, &caller)
            .await?;
        Ok(Response::new(convert::token_to_pb(&token)))
    }

    async fn list_tokens(
        &self,
        request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        let caller = self.caller(&request).await?;
        let tokens = self.ferry.list_tokens(&caller).await?;
        Ok(Response::new(pb::ListTokensResponse {
            tokens: tokens.iter().map(convert::token_to_pb).collect(),
        }))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let events = self
            .ferry
            .audit_events(
                AuditQuery {
                    principal: request.principal,
                    target: request.target,
                    limit: request.limit,
                },
                &caller,
            )
            .await?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: events.iter().map(convert::audit_event_to_pb).collect(),
        }))
    }

    async fn reload_policies(
        &self,
        request: Request<pb::ReloadPoliciesRequest>,
    ) -> Result<Response<pb::ReloadPoliciesResponse>, Status> {
        let caller = self.caller(&request).await?;
        let loaded = self.ferry.reload_policies(&caller).await?;
        Ok(Response::new(pb::ReloadPoliciesResponse {
            grants_loaded: loaded as u32,
        }))
    }

    async fn get_server_info(
        &self,
        request: Request<pb::GetServerInfoRequest>,
    ) -> Result<Response<pb::ServerInfo>, Status> {
        let caller = self.caller(&request).await?;
        let info = self.ferry.server_info(&caller);
        let strings = |items: Vec<&str>| items.into_iter().map(str::to_owned).collect();
        Ok(Response::new(pb::ServerInfo {
            version: info.version.to_owned(),
            api_versions: strings(info.api_versions),
            registry: info.registry.to_owned(),
            warehouse: info.warehouse.to_owned(),
            source_schemes: strings(info.source_schemes),
        }))
    }

    type ReadRowsStream = EventStream<pb::ReadRowsResponse>;

    async fn read_rows(
        &self,
        request: Request<pb::ReadRowsRequest>,
    ) -> Result<Response<Self::ReadRowsStream>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        record_dataset(&request.name);
        let governed = self
            .ferry
            .read(
                ReadRequest {
                    name: request.name,
                    from_date: request.from_date,
                    to_date: request.to_date,
                    columns: request.columns,
                    limit: request.limit,
                },
                &caller,
            )
            .await?;
        let header = pb::ReadRowsResponse {
            schema: convert::schema_to_pb(&governed.rows.schema, &governed.columns),
            rows: Vec::new(),
        };
        let body = governed.rows.batches.flat_map(|batch| {
            let messages: Vec<Result<pb::ReadRowsResponse, Status>> =
                match batch.and_then(|b| convert::batch_to_rows(&b)) {
                    Ok(rows) => rows
                        .chunks(ROWS_PER_MESSAGE)
                        .map(|chunk| {
                            Ok(pb::ReadRowsResponse {
                                schema: Vec::new(),
                                rows: chunk.to_vec(),
                            })
                        })
                        .collect(),
                    Err(e) => vec![Err(Status::from(e))],
                };
            futures::stream::iter(messages)
        });
        Ok(Response::new(Box::pin(
            futures::stream::once(async { Ok(header) }).chain(body),
        )))
    }
}
