//! Conversions between `ferry.v1` messages and domain types.

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Decimal256Type, Float64Type, Int64Type, SchemaRef,
    TimeUnit, TimestampMicrosecondType, i256,
};
use datafusion::arrow::record_batch::RecordBatch;
use ferry_proto::v1 as pb;

use super::quality;
use crate::contract::values;
use crate::contract::{
    Classification, Column, ColumnType, Compression, Contract, CsvOptions, DataFormat, DerivedView,
    LegalBasis, Materialization, Partitioning, PiiHandling, SourceFormat, TextEncoding,
    UnknownFields,
};
use crate::error::FerryError;
use crate::governance::{AuditEvent, Grant, GrantRole, GrantStatus, NewGrant, TokenRecord};
use crate::registry::{PartitionEntry, Publication, PublicationStatus, RegisteredDataset};
use crate::service::ColumnGovernance;

pub fn feed_status_to_pb(status: crate::service::FeedStatus) -> pb::FeedStatus {
    let state = status.state;
    pb::FeedStatus {
        dataset: status.dataset,
        feed: Some(feed_to_pb(&status.feed)),
        next_check_at: state.as_ref().map(|s| timestamp(s.next_check_at)),
        last_check_at: state.as_ref().and_then(|s| s.last_check_at).map(timestamp),
        last_error: state
            .as_ref()
            .map(|s| s.last_error.clone())
            .unwrap_or_default(),
        failures: state.as_ref().map_or(0, |s| s.failures),
        running: state.as_ref().is_some_and(|s| s.running_on.is_some()),
        recent_attempts: status
            .recent_attempts
            .into_iter()
            .map(|attempt| pb::FeedAttempt {
                partition_date: attempt.partition_date.to_string(),
                source_uri: attempt.source_uri,
                object_version: attempt.object_version,
                at: Some(timestamp(attempt.at)),
                outcome: attempt.outcome.as_str().to_owned(),
                publication_id: attempt.publication_id,
                detail: attempt.detail,
            })
            .collect(),
    }
}

fn feed_to_pb(feed: &crate::contract::Feed) -> pb::Feed {
    pb::Feed {
        source_template: feed.source_template.clone(),
        check_every: feed.check_every.clone(),
        lookback_days: Some(feed.lookback_days),
    }
}

pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

fn column_type_to_pb(t: ColumnType) -> pb::ColumnType {
    match t {
        ColumnType::String => pb::ColumnType::String,
        ColumnType::Int64 => pb::ColumnType::Int64,
        ColumnType::Float64 => pb::ColumnType::Float64,
        ColumnType::Bool => pb::ColumnType::Bool,
        ColumnType::Date => pb::ColumnType::Date,
        ColumnType::Timestamp => pb::ColumnType::Timestamp,
        ColumnType::Datetime => pb::ColumnType::Datetime,
        ColumnType::Numeric => pb::ColumnType::Numeric,
        ColumnType::Bytes => pb::ColumnType::Bytes,
    }
}

fn legal_basis_to_pb(b: Option<LegalBasis>) -> pb::LegalBasis {
    match b {
        None => pb::LegalBasis::Unspecified,
        Some(LegalBasis::Consent) => pb::LegalBasis::Consent,
        Some(LegalBasis::Contract) => pb::LegalBasis::Contract,
        Some(LegalBasis::LegalObligation) => pb::LegalBasis::LegalObligation,
        Some(LegalBasis::VitalInterests) => pb::LegalBasis::VitalInterests,
        Some(LegalBasis::PublicTask) => pb::LegalBasis::PublicTask,
        Some(LegalBasis::LegitimateInterests) => pb::LegalBasis::LegitimateInterests,
    }
}

pub fn time_from_pb(
    t: Option<prost_types::Timestamp>,
) -> Result<Option<DateTime<Utc>>, FerryError> {
    t.map(|t| {
        DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
            .ok_or_else(|| FerryError::invalid_field("expires_at", "timestamp out of range"))
    })
    .transpose()
}

fn classification_to_pb(c: Classification) -> pb::Classification {
    match c {
        Classification::Public => pb::Classification::Public,
        Classification::Internal => pb::Classification::Internal,
        Classification::Personal => pb::Classification::Personal,
        Classification::Sensitive => pb::Classification::Sensitive,
    }
}

pub fn new_grant_from_pb(r: pb::GrantAccessRequest) -> Result<NewGrant, FerryError> {
    let role = match pb::Role::try_from(r.role) {
        Ok(pb::Role::Reader) | Ok(pb::Role::Unspecified) => GrantRole::Reader,
        Ok(pb::Role::Publisher) => GrantRole::Publisher,
        Err(_) => {
            return Err(FerryError::invalid_field(
                "role",
                format!("unknown role {}", r.role),
            ));
        }
    };
    Ok(NewGrant {
        target: r.target.trim().to_owned(),
        grantee: r.grantee.trim().to_owned(),
        role,
        purpose: r.purpose,
        legal_basis: legal_basis_from_pb(r.legal_basis).map_err(|e| e.for_field("legal_basis"))?,
        expires_at: time_from_pb(r.expires_at)?,
        clear_personal_data: r.clear_personal_data,
    })
}

pub fn grant_to_pb(g: &Grant) -> pb::Grant {
    let status = match g.status(Utc::now()) {
        GrantStatus::Active => pb::GrantStatus::Active,
        GrantStatus::PendingApproval => pb::GrantStatus::PendingApproval,
        GrantStatus::Revoked => pb::GrantStatus::Revoked,
        GrantStatus::Expired => pb::GrantStatus::Expired,
    };
    pb::Grant {
        id: g.id.clone(),
        target: g.target.clone(),
        grantee: g.grantee.clone(),
        role: match g.role {
            GrantRole::Reader => pb::Role::Reader,
            GrantRole::Publisher => pb::Role::Publisher,
        }
        .into(),
        purpose: g.purpose.clone(),
        legal_basis: legal_basis_to_pb(g.legal_basis).into(),
        expires_at: g.expires_at.map(timestamp),
        status: status.into(),
        granted_by: g.granted_by.clone(),
        approved_by: g.approved_by.clone().unwrap_or_default(),
        created_at: Some(timestamp(g.created_at)),
        dataset: g.dataset.clone(),
        clear_personal_data: g.clear_personal_data,
        approved_at: g.approved_at.map(timestamp),
        revoked_by: g.revoked_by.clone().unwrap_or_default(),
        revoked_at: g.revoked_at.map(timestamp),
    }
}

pub fn token_to_pb(t: &TokenRecord) -> pb::TokenInfo {
    pb::TokenInfo {
        id: t.id.clone(),
        principal: t.principal.clone(),
        description: t.description.clone(),
        created_by: t.created_by.clone(),
        created_at: Some(timestamp(t.created_at)),
        expires_at: t.expires_at.map(timestamp),
        revoked_at: t.revoked_at.map(timestamp),
    }
}

pub fn audit_event_to_pb(e: &AuditEvent) -> pb::AuditEvent {
    pb::AuditEvent {
        id: e.id.clone(),
        at: Some(timestamp(e.at)),
        principal: e.principal.clone(),
        action: e.action.clone(),
        target: e.target.clone(),
        outcome: e.outcome.as_str().into(),
        detail: e.detail.clone(),
        request_id: e.request_id.clone(),
    }
}

fn legal_basis_from_pb(value: i32) -> Result<Option<LegalBasis>, FerryError> {
    Ok(match pb::LegalBasis::try_from(value) {
        Ok(pb::LegalBasis::Unspecified) => None,
        Ok(pb::LegalBasis::Consent) => Some(LegalBasis::Consent),
        Ok(pb::LegalBasis::Contract) => Some(LegalBasis::Contract),
        Ok(pb::LegalBasis::LegalObligation) => Some(LegalBasis::LegalObligation),
        Ok(pb::LegalBasis::VitalInterests) => Some(LegalBasis::VitalInterests),
        Ok(pb::LegalBasis::PublicTask) => Some(LegalBasis::PublicTask),
        Ok(pb::LegalBasis::LegitimateInterests) => Some(LegalBasis::LegitimateInterests),
        Err(_) => {
            return Err(FerryError::InvalidContract(format!(
                "unknown legal basis {value}"
            )));
        }
    })
}

pub fn contract_to_pb(c: &Contract) -> pb::DatasetContract {
    pb::DatasetContract {
        name: c.name.clone(),
        owner: c.owner.clone(),
        description: c.description.clone(),
        columns: c
            .columns
            .iter()
            .map(|col| pb::Column {
                name: col.name.clone(),
                r#type: column_type_to_pb(col.column_type).into(),
                required: col.required,
                classification: classification_to_pb(col.classification).into(),
                description: col.description.clone(),
                pii_handling: match col.pii_handling {
                    PiiHandling::Keep => pb::PiiHandling::Keep,
                    PiiHandling::Pseudonymize => pb::PiiHandling::Pseudonymize,
                    PiiHandling::Drop => pb::PiiHandling::Drop,
                }
                .into(),
                legal_basis: legal_basis_to_pb(col.legal_basis).into(),
                purpose: col.purpose.clone(),
                retention_days: col.retention_days.unwrap_or_default(),
                source_name: col.source_name.clone().unwrap_or_default(),
                format: col.format.clone().unwrap_or_default(),
                precision: col.precision.map(u32::from).unwrap_or_default(),
                scale: col.scale.map(u32::from),
                quality: col.quality.iter().map(quality::column_rule_to_pb).collect(),
            })
            .collect(),
        partitioning: Some(pb::Partitioning {
            granularity: c.partitioning.granularity.clone(),
            partition_column: c.partitioning.column.clone(),
            from_column: c.partitioning.from_column.clone().unwrap_or_default(),
        }),
        source_format: Some(pb::SourceFormat {
            csv: Some(pb::CsvOptions {
                delimiter: c.source.csv.delimiter.to_string(),
                has_header: c.source.csv.has_header,
                empty_as_null: c.source.csv.empty_as_null,
                quote: c.source.csv.quote.to_string(),
                escape: c.source.csv.escape.map(String::from).unwrap_or_default(),
                null_values: c.source.csv.null_values.clone(),
                skip_rows: c.source.csv.skip_rows,
                encoding: match c.source.csv.encoding {
                    TextEncoding::Utf8 => pb::TextEncoding::Utf8,
                    TextEncoding::Latin1 => pb::TextEncoding::Latin1,
                    TextEncoding::Windows1252 => pb::TextEncoding::Windows1252,
                }
                .into(),
            }),
            max_rejected_rows: c.source.max_rejected_rows,
            format: match c.source.format {
                DataFormat::Csv => pb::DataFormat::Csv,
                DataFormat::Ndjson => pb::DataFormat::Ndjson,
                DataFormat::Parquet => pb::DataFormat::Parquet,
            }
            .into(),
            ignore_unknown_fields: c.source.unknown_fields == UnknownFields::Ignore,
            compression: match c.source.compression {
                Compression::Auto => pb::Compression::Unspecified,
                Compression::None => pb::Compression::None,
                Compression::Gzip => pb::Compression::Gzip,
                Compression::Zstd => pb::Compression::Zstd,
            }
            .into(),
        }),
        retention_days: c.retention_days.unwrap_or_default(),
        views: c
            .views
            .iter()
            .map(|v| pb::DerivedView {
                name: v.name.clone(),
                description: v.description.clone(),
                columns: v.columns.clone(),
                filter: v.filter.clone(),
                materialization: match v.materialization {
                    Materialization::Materialized => pb::Materialization::Materialized,
                    Materialization::OnRead => pb::Materialization::OnRead,
                }
                .into(),
            })
            .collect(),
        major_version: c.major_version,
        quality: c.quality.iter().map(quality::dataset_rule_to_pb).collect(),
        sla: c.sla.as_ref().map(|sla| pb::Sla {
            available_by: sla.available_by.clone(),
            timezone: sla.timezone.clone(),
        }),
        feed: c.feed.as_ref().map(feed_to_pb),
    }
}

/// A one-character CSV option: empty is unset, more than one character is refused rather than
/// cut short.
fn one_char(option: &str, text: &str) -> Result<Option<char>, FerryError> {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (None, _) => Ok(None),
        (Some(c), None) => Ok(Some(c)),
        _ => Err(FerryError::InvalidContract(format!(
            "source.csv.{option} must be one character"
        ))),
    }
}

pub fn contract_from_pb(c: pb::DatasetContract) -> Result<Contract, FerryError> {
    let invalid = |msg: String| FerryError::InvalidContract(msg);
    let columns = c
        .columns
        .into_iter()
        .map(|col| {
            let column_type = match pb::ColumnType::try_from(col.r#type) {
                Ok(pb::ColumnType::String) => ColumnType::String,
                Ok(pb::ColumnType::Int64) => ColumnType::Int64,
                Ok(pb::ColumnType::Float64) => ColumnType::Float64,
                Ok(pb::ColumnType::Bool) => ColumnType::Bool,
                Ok(pb::ColumnType::Date) => ColumnType::Date,
                Ok(pb::ColumnType::Timestamp) => ColumnType::Timestamp,
                Ok(pb::ColumnType::Datetime) => ColumnType::Datetime,
                Ok(pb::ColumnType::Numeric) => ColumnType::Numeric,
                Ok(pb::ColumnType::Bytes) => ColumnType::Bytes,
                _ => return Err(invalid(format!("column {}: a type is required", col.name))),
            };
            // A number past u8 is refused, not wrapped.
            let digits = |what: &str, value: u32| -> Result<u8, FerryError> {
                u8::try_from(value).map_err(|_| {
                    invalid(format!(
                        "column {}: {what} {value} is out of range",
                        col.name
                    ))
                })
            };
            let precision = match col.precision {
                0 => None,
                p => Some(digits("precision", p)?),
            };
            let scale = col.scale.map(|s| digits("scale", s)).transpose()?;
            Ok(Column {
                column_type,
                format: (!col.format.is_empty()).then_some(col.format),
                precision,
                scale,
                required: col.required,
                classification: match pb::Classification::try_from(col.classification) {
                    Ok(pb::Classification::Unspecified | pb::Classification::Public) => {
                        Classification::Public
                    }
                    Ok(pb::Classification::Internal) => Classification::Internal,
                    Ok(pb::Classification::Personal) => Classification::Personal,
                    Ok(pb::Classification::Sensitive) => Classification::Sensitive,
                    Err(_) => {
                        return Err(invalid(format!(
                            "column {}: unknown classification",
                            col.name
                        )));
                    }
                },
                description: col.description,
                pii_handling: match pb::PiiHandling::try_from(col.pii_handling) {
                    Ok(pb::PiiHandling::Unspecified | pb::PiiHandling::Keep) => PiiHandling::Keep,
                    Ok(pb::PiiHandling::Pseudonymize) => PiiHandling::Pseudonymize,
                    Ok(pb::PiiHandling::Drop) => PiiHandling::Drop,
                    Err(_) => {
                        return Err(invalid(format!(
                            "column {}: unknown PII handling",
                            col.name
                        )));
                    }
                },
                legal_basis: legal_basis_from_pb(col.legal_basis)?,
                purpose: col.purpose,
                retention_days: (col.retention_days > 0).then_some(col.retention_days),
                quality: col
                    .quality
                    .into_iter()
                    .map(quality::column_rule_from_pb)
                    .collect::<Result<_, _>>()?,
                source_name: (!col.source_name.is_empty()).then_some(col.source_name),
                name: col.name,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let partitioning = c.partitioning.map_or_else(Partitioning::default, |p| {
        let default = Partitioning::default();
        Partitioning {
            granularity: if p.granularity.is_empty() {
                default.granularity
            } else {
                p.granularity
            },
            column: if p.partition_column.is_empty() {
                default.column
            } else {
                p.partition_column
            },
            from_column: (!p.from_column.is_empty()).then_some(p.from_column),
        }
    });
    let source = match c.source_format {
        None => SourceFormat::default(),
        Some(f) => {
            let csv = match f.csv {
                None => CsvOptions::default(),
                Some(o) => CsvOptions {
                    delimiter: one_char("delimiter", &o.delimiter)?.unwrap_or(','),
                    has_header: o.has_header,
                    empty_as_null: o.empty_as_null,
                    quote: one_char("quote", &o.quote)?.unwrap_or('"'),
                    escape: one_char("escape", &o.escape)?,
                    null_values: o.null_values,
                    skip_rows: o.skip_rows,
                    encoding: match pb::TextEncoding::try_from(o.encoding) {
                        Ok(pb::TextEncoding::Unspecified | pb::TextEncoding::Utf8) => {
                            TextEncoding::Utf8
                        }
                        Ok(pb::TextEncoding::Latin1) => TextEncoding::Latin1,
                        Ok(pb::TextEncoding::Windows1252) => TextEncoding::Windows1252,
                        Err(_) => {
                            return Err(invalid(format!("unknown text encoding {}", o.encoding)));
                        }
                    },
                },
            };
            SourceFormat {
                format: match pb::DataFormat::try_from(f.format) {
                    Ok(pb::DataFormat::Unspecified | pb::DataFormat::Csv) => DataFormat::Csv,
                    Ok(pb::DataFormat::Ndjson) => DataFormat::Ndjson,
                    Ok(pb::DataFormat::Parquet) => DataFormat::Parquet,
                    Err(_) => return Err(invalid(format!("unknown source format {}", f.format))),
                },
                unknown_fields: if f.ignore_unknown_fields {
                    UnknownFields::Ignore
                } else {
                    UnknownFields::Refuse
                },
                csv,
                max_rejected_rows: f.max_rejected_rows,
                compression: match pb::Compression::try_from(f.compression) {
                    Ok(pb::Compression::None) => Compression::None,
                    Ok(pb::Compression::Gzip) => Compression::Gzip,
                    Ok(pb::Compression::Zstd) => Compression::Zstd,
                    Ok(pb::Compression::Unspecified) => Compression::Auto,
                    Err(_) => {
                        return Err(invalid(format!("unknown compression {}", f.compression)));
                    }
                },
            }
        }
    };
    let views = c
        .views
        .into_iter()
        .map(|v| DerivedView {
            name: v.name,
            description: v.description,
            columns: v.columns,
            filter: v.filter,
            materialization: match pb::Materialization::try_from(v.materialization) {
                Ok(pb::Materialization::OnRead) => Materialization::OnRead,
                _ => Materialization::Materialized,
            },
        })
        .collect();
    let contract = Contract {
        name: c.name,
        owner: c.owner,
        description: c.description,
        major_version: c.major_version.max(1),
        columns,
        partitioning,
        source,
        retention_days: (c.retention_days > 0).then_some(c.retention_days),
        views,
        quality: c
            .quality
            .into_iter()
            .map(quality::dataset_rule_from_pb)
            .collect::<Result<_, _>>()?,
        sla: c.sla.map(|sla| crate::contract::Sla {
            available_by: sla.available_by,
            timezone: if sla.timezone.is_empty() {
                "UTC".into()
            } else {
                sla.timezone
            },
        }),
        feed: c.feed.map(|feed| {
            let mut contract_feed = crate::contract::Feed::at(feed.source_template);
            if !feed.check_every.is_empty() {
                contract_feed.check_every = feed.check_every;
            }
            if let Some(days) = feed.lookback_days {
                contract_feed.lookback_days = days;
            }
            contract_feed
        }),
    };
    contract.validate()?;
    Ok(contract)
}

pub fn dataset_to_pb(d: &RegisteredDataset, partitions: &[PartitionEntry]) -> pb::Dataset {
    pb::Dataset {
        contract: Some(contract_to_pb(&d.contract)),
        contract_version: d.version.to_string(),
        registered_at: Some(timestamp(d.registered_at)),
        partitions: partitions
            .iter()
            .map(|p| pb::PartitionSummary {
                partition_date: p.partition_date.to_string(),
                rows: p.rows,
                publication_id: p.publication_id.clone(),
            })
            .collect(),
    }
}

pub fn publication_to_pb(p: &Publication) -> pb::Publication {
    pb::Publication {
        id: p.id.clone(),
        dataset: p.dataset.clone(),
        partition_date: p.partition_date.to_string(),
        source_uri: p.source_uri.clone(),
        sha256: p.sha256.clone(),
        contract_version: p.contract_version.clone(),
        status: match p.status {
            PublicationStatus::Running => pb::PublicationStatus::Running,
            PublicationStatus::Succeeded => pb::PublicationStatus::Succeeded,
            PublicationStatus::Failed => pb::PublicationStatus::Failed,
            PublicationStatus::Interrupted => pb::PublicationStatus::Interrupted,
        }
        .into(),
        rows_accepted: p.rows_accepted,
        rows_rejected: p.rows_rejected,
        bytes: p.bytes,
        duration_ms: p.duration_ms,
        started_at: Some(timestamp(p.started_at)),
        finished_at: p.finished_at.map(timestamp),
        error: p.error.clone(),
        row_errors: p
            .row_errors
            .iter()
            .map(|e| pb::RowError {
                line: e.line,
                column: e.column.clone(),
                reason: e.reason.clone(),
                row_group: e.row_group,
            })
            .collect(),
        warehouse_job_ids: p.warehouse_job_ids.clone(),
        published_by: p.published_by.clone(),
        same_as_publication_id: p.same_as.clone().unwrap_or_default(),
        quarantine_uri: p.quarantine_uri.clone(),
        quality: p.quality.iter().map(quality::outcome_to_pb).collect(),
    }
}

pub fn schema_to_pb(schema: &SchemaRef, governance: &[ColumnGovernance]) -> Vec<pb::ColumnSchema> {
    schema
        .fields()
        .iter()
        .zip(governance)
        .map(|(f, g)| pb::ColumnSchema {
            masked: g.masked,
            classification: classification_to_pb(g.classification).into(),
            name: f.name().clone(),
            r#type: match f.data_type() {
                DataType::Int64 => pb::ColumnType::Int64,
                DataType::Float64 => pb::ColumnType::Float64,
                DataType::Boolean => pb::ColumnType::Bool,
                DataType::Date32 => pb::ColumnType::Date,
                DataType::Timestamp(_, Some(_)) => pb::ColumnType::Timestamp,
                DataType::Timestamp(_, None) => pb::ColumnType::Datetime,
                DataType::Decimal128(..) | DataType::Decimal256(..) => pb::ColumnType::Numeric,
                DataType::Binary => pb::ColumnType::Bytes,
                _ => pb::ColumnType::String,
            }
            .into(),
        })
        .collect()
}

/// Turns a batch into rows of typed values.
pub fn batch_to_rows(batch: &RecordBatch) -> Result<Vec<pb::Row>, FerryError> {
    use pb::value::Kind;
    let mut rows: Vec<pb::Row> = (0..batch.num_rows())
        .map(|_| pb::Row {
            values: Vec::with_capacity(batch.num_columns()),
        })
        .collect();
    for column in batch.columns() {
        let kind_at = |i: usize| -> Result<Kind, FerryError> {
            if column.is_null(i) {
                return Ok(Kind::NullValue(true));
            }
            Ok(match column.data_type() {
                DataType::Utf8 => Kind::StringValue(column.as_string::<i32>().value(i).to_owned()),
                DataType::Utf8View => {
                    Kind::StringValue(column.as_string_view().value(i).to_owned())
                }
                DataType::Int64 => Kind::Int64Value(column.as_primitive::<Int64Type>().value(i)),
                DataType::Float64 => {
                    Kind::Float64Value(column.as_primitive::<Float64Type>().value(i))
                }
                DataType::Boolean => Kind::BoolValue(column.as_boolean().value(i)),
                DataType::Date32 => Kind::DateValue(
                    column
                        .as_primitive::<Date32Type>()
                        .value_as_date(i)
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                ),
                DataType::Timestamp(TimeUnit::Microsecond, zone) => {
                    let micros = column.as_primitive::<TimestampMicrosecondType>().value(i);
                    match zone {
                        Some(_) => Kind::TimestampValue(values::format_timestamp(micros)),
                        None => Kind::DatetimeValue(values::format_datetime(micros)),
                    }
                }
                DataType::Decimal128(_, scale) => Kind::NumericValue(values::format_decimal(
                    i256::from_i128(column.as_primitive::<Decimal128Type>().value(i)),
                    (*scale).max(0) as u8,
                )),
                DataType::Decimal256(_, scale) => Kind::NumericValue(values::format_decimal(
                    column.as_primitive::<Decimal256Type>().value(i),
                    (*scale).max(0) as u8,
                )),
                DataType::Binary => Kind::BytesValue(column.as_binary::<i32>().value(i).to_vec()),
                other => {
                    return Err(FerryError::Internal(format!(
                        "cannot send a {other} column"
                    )));
                }
            })
        };
        for (i, row) in rows.iter_mut().enumerate() {
            row.values.push(pb::Value {
                kind: Some(kind_at(i)?),
            });
        }
    }
    Ok(rows)
}
