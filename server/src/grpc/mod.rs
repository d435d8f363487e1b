//! Thin gRPC adapters: proto in, domain call, proto out. Errors become statuses in `status.rs`.

pub mod convert;
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
use crate::ingest::IngestProgress;
use crate::service::{Caller, Ferry, PublishRequest, ReadRequest};

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

/// Names the caller and the dataset on the RPC span (never a token or a row value).
fn record_call(dataset: &str) {
    let span = tracing::Span::current();
    span.record("ferry.principal", Caller::anonymous().principal.as_str());
    if !dataset.is_empty() {
        span.record("ferry.dataset", dataset);
    }
}

fn unimplemented(rpc: &str, issue: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is not implemented yet: it arrives with {issue}"
    ))
}

#[tonic::async_trait]
impl FerryService for FerryGrpc {
    async fn register_dataset(
        &self,
        request: Request<pb::RegisterDatasetRequest>,
    ) -> Result<Response<pb::RegisterDatasetResponse>, Status> {
        let contract = match request.into_inner().contract_source {
            Some(pb::register_dataset_request::ContractSource::Contract(c)) => {
                convert::contract_from_pb(c)?
            }
            Some(pb::register_dataset_request::ContractSource::ContractYaml(yaml)) => {
                Contract::from_yaml(&yaml)?
            }
            None => {
                return Err(Status::invalid_argument(
                    "a contract or contract_yaml is required",
                ));
            }
        };
        record_call(&contract.name);
        let outcome = self
            .ferry
            .register_dataset(contract, &Caller::anonymous())
            .await?;
        let (_, partitions) = self
            .ferry
            .get_dataset(&outcome.dataset.contract.name)
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
        let name = request.into_inner().name;
        record_call(&name);
        let (dataset, partitions) = self.ferry.get_dataset(&name).await?;
        Ok(Response::new(convert::dataset_to_pb(&dataset, &partitions)))
    }

    async fn list_datasets(
        &self,
        request: Request<pb::ListDatasetsRequest>,
    ) -> Result<Response<pb::ListDatasetsResponse>, Status> {
        let datasets = self
            .ferry
            .list_datasets(&request.into_inner().name_prefix)
            .await?;
        Ok(Response::new(pb::ListDatasetsResponse {
            datasets: datasets
                .iter()
                .map(|d| convert::dataset_to_pb(d, &[]))
                .collect(),
        }))
    }

    type PublishPartitionStream = EventStream<pb::PublishPartitionEvent>;

    async fn publish_partition(
        &self,
        request: Request<pb::PublishPartitionRequest>,
    ) -> Result<Response<Self::PublishPartitionStream>, Status> {
        let request = request.into_inner();
        record_call(&request.dataset);
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
            async move {
                ferry
                    .publish(request, &Caller::anonymous(), task_progress)
                    .await
            }
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
                Err(join) => Err(Status::internal(format!("publish task failed: {join}"))),
            };
            let _ = tx.send(message).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_publication(
        &self,
        request: Request<pb::GetPublicationRequest>,
    ) -> Result<Response<pb::Publication>, Status> {
        let publication = self.ferry.get_publication(&request.into_inner().id).await?;
        Ok(Response::new(convert::publication_to_pb(&publication)))
    }

    async fn list_publications(
        &self,
        request: Request<pb::ListPublicationsRequest>,
    ) -> Result<Response<pb::ListPublicationsResponse>, Status> {
        let request = request.into_inner();
        record_call(&request.dataset);
        let publications = self
            .ferry
            .list_publications(&request.dataset, &request.partition_date, request.limit)
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
        _: Request<pb::GrantAccessRequest>,
    ) -> Result<Response<pb::Grant>, Status> {
        Err(unimplemented(
            "GrantAccess",
            "the governance work (grants, casbin, PII rules)",
        ))
    }

    async fn revoke_access(
        &self,
        _: Request<pb::RevokeAccessRequest>,
    ) -> Result<Response<pb::Grant>, Status> {
        Err(unimplemented(
            "RevokeAccess",
            "the governance work (grants, casbin, PII rules)",
        ))
    }

    async fn approve_grant(
        &self,
        _: Request<pb::ApproveGrantRequest>,
    ) -> Result<Response<pb::Grant>, Status> {
        Err(unimplemented(
            "ApproveGrant",
            "the governance work (grants, casbin, PII rules)",
        ))
    }

    async fn list_grants(
        &self,
        _: Request<pb::ListGrantsRequest>,
    ) -> Result<Response<pb::ListGrantsResponse>, Status> {
        Err(unimplemented(
            "ListGrants",
            "the governance work (grants, casbin, PII rules)",
        ))
    }

    type ReadRowsStream = EventStream<pb::ReadRowsResponse>;

    async fn read_rows(
        &self,
        request: Request<pb::ReadRowsRequest>,
    ) -> Result<Response<Self::ReadRowsStream>, Status> {
        let request = request.into_inner();
        record_call(&request.name);
        let rows = self
            .ferry
            .read(ReadRequest {
                name: request.name,
                from_date: request.from_date,
                to_date: request.to_date,
                columns: request.columns,
                limit: request.limit,
            })
            .await?;
        let header = pb::ReadRowsResponse {
            schema: convert::schema_to_pb(&rows.schema),
            rows: Vec::new(),
        };
        let body = rows.batches.flat_map(|batch| {
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
