//! The BigQuery side of a contract: table definitions and the SQL Ferry runs. Only validated
//! names (lower snake_case) and filters rendered from a checked AST reach this SQL, and dates are
//! typed, so nothing a caller typed is spliced in as text.

use chrono::NaiveDate;
use gcp_bigquery_client::model::field_type::FieldType;
use gcp_bigquery_client::model::table::Table;
use gcp_bigquery_client::model::table_field_schema::TableFieldSchema;
use gcp_bigquery_client::model::table_schema::TableSchema;
use gcp_bigquery_client::model::time_partitioning::TimePartitioning;
use gcp_bigquery_client::model::view_definition::ViewDefinition;

use crate::contract::{Classification, Column, ColumnType, Contract, Materialization, PiiHandling};
use crate::error::FerryError;
use crate::governance::MASKED_TEXT;
use crate::warehouse::table_column_names;

/// `text` as a BigQuery dataset or table id, injectively: `a-z` and `0-9` stay, `_` becomes `__`
/// and every other byte `_` and two hex digits (`team:a` → `team_3aa`, `catalog.with_image` →
/// `catalog_2ewith__image`). Distinct Ferry names never share an id.
pub fn escaped_id(text: &str) -> String {
    let mut id = String::with_capacity(text.len() + 8);
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'0'..=b'9' => id.push(char::from(byte)),
            b'_' => id.push_str("__"),
            other => id.push_str(&format!("_{other:02x}")),
        }
    }
    id
}

/// A table's address in BigQuery: Ferry's `namespace.name` is dataset `namespace`, table `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableAddress {
    pub project: String,
    pub dataset: String,
    pub table: String,
}

impl TableAddress {
    pub fn of(project: &str, qualified_name: &str) -> Result<Self, FerryError> {
        let (dataset, table) = qualified_name.split_once('.').ok_or_else(|| {
            FerryError::Internal(format!("{qualified_name} is not namespace.name"))
        })?;
        Ok(Self {
            project: project.to_owned(),
            dataset: dataset.to_owned(),
            table: table.to_owned(),
        })
    }

    pub fn in_dataset(project: &str, dataset: &str, table: &str) -> Self {
        Self {
            project: project.to_owned(),
            dataset: dataset.to_owned(),
            table: table.to_owned(),
        }
    }

    /// The quoted path for SQL.
    pub fn sql(&self) -> String {
        format!("`{}.{}.{}`", self.project, self.dataset, self.table)
    }
}

impl std::fmt::Display for TableAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.project, self.dataset, self.table)
    }
}

/// A column's BigQuery type. Ferry checks a numeric column's own precision and scale while
/// loading; the table holds NUMERIC, or BIGNUMERIC when NUMERIC's 29.9 digits cannot.
pub fn field_type(column: &Column) -> FieldType {
    match column.column_type {
        ColumnType::String => FieldType::String,
        ColumnType::Int64 => FieldType::Int64,
        ColumnType::Float64 => FieldType::Float64,
        ColumnType::Bool => FieldType::Bool,
        ColumnType::Date => FieldType::Date,
        ColumnType::Timestamp => FieldType::Timestamp,
        ColumnType::Datetime => FieldType::Datetime,
        ColumnType::Numeric if column.decimal().is_some_and(|d| d.fits_numeric()) => {
            FieldType::Numeric
        }
        ColumnType::Numeric => FieldType::Bignumeric,
        ColumnType::Bytes => FieldType::Bytes,
    }
}

fn field(column: &Column) -> TableFieldSchema {
    let mut field = TableFieldSchema::new(&column.name, field_type(column));
    field.mode = Some(
        if column.required {
            "REQUIRED"
        } else {
            "NULLABLE"
        }
        .into(),
    );
    if !column.description.is_empty() {
        field.description = Some(column.description.clone());
    }
    field
}

/// The stored columns of `table` (dataset or view) followed by the partition column, which is
/// what every Ferry table in BigQuery holds.
pub fn table_schema(contract: &Contract, table: &str) -> TableSchema {
    let mut fields: Vec<TableFieldSchema> = contract
        .table_columns(table)
        .into_iter()
        .map(field)
        .collect();
    let mut partition = TableFieldSchema::date(&contract.partition_column());
    partition.mode = Some("REQUIRED".into());
    partition.description = Some("The day partition this row was published into.".into());
    fields.push(partition);
    TableSchema::new(fields)
}

/// Label values allow lowercase letters, digits, `_` and `-` only.
pub fn label_value(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '_' | '-' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .take(63)
        .collect()
}

fn labelled(mut table: Table, contract: &Contract) -> Table {
    table = table
        .label("ferry-owner", &label_value(&contract.owner))
        .label("ferry-contract-major", &contract.major_version.to_string())
        .label("ferry-managed", "true");
    table
}

/// The raw table and every derived view, as BigQuery definitions.
pub fn contract_tables(project: &str, contract: &Contract) -> Result<Vec<Table>, FerryError> {
    // Retention is BigQuery's to enforce too: it drops expired partitions itself.
    let day_partitioned = || {
        let partitioning = TimePartitioning::per_day().field(&contract.partition_column());
        match contract.effective_retention_days() {
            Some(days) => {
                partitioning.expiration_ms(std::time::Duration::from_secs(u64::from(days) * 86_400))
            }
            None => partitioning,
        }
    };
    let raw = TableAddress::of(project, &contract.name)?;
    let mut tables = vec![labelled(
        Table::new(
            project,
            &raw.dataset,
            &raw.table,
            table_schema(contract, &contract.name),
        )
        .description(&contract.description)
        .time_partitioning(day_partitioned()),
        contract,
    )];
    for view in &contract.views {
        let address = TableAddress::of(project, &view.name)?;
        let schema = table_schema(contract, &view.name);
        let table = Table::new(project, &address.dataset, &address.table, schema)
            .description(&view.description);
        let table = match view.materialization {
            Materialization::Materialized => table.time_partitioning(day_partitioned()),
            Materialization::OnRead => {
                let filter = contract.view_filter(view)?;
                let columns = table_column_names(contract, &view.name);
                // A view's schema is BigQuery's to derive from its query.
                let mut table = table.view(ViewDefinition {
                    query: select(&columns, &raw, filter.to_bigquery_sql().as_deref(), None),
                    use_legacy_sql: Some(false),
                    user_defined_function_resources: None,
                });
                table.schema = TableSchema::default();
                table
            }
        };
        tables.push(labelled(table, contract));
    }
    Ok(tables)
}

fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn date_literal(date: NaiveDate) -> String {
    format!("DATE '{}'", date.format("%Y-%m-%d"))
}

/// `SELECT columns FROM table [WHERE filter] [AND partition in dates]`.
pub fn select(
    columns: &[String],
    from: &TableAddress,
    filter: Option<&str>,
    partitions: Option<(&str, &[NaiveDate])>,
) -> String {
    let mut conditions = Vec::new();
    if let Some((column, dates)) = partitions {
        conditions.push(partition_condition(column, dates));
    }
    if let Some(filter) = filter {
        conditions.push(format!("({filter})"));
    }
    let mut sql = format!("SELECT {} FROM {}", column_list(columns), from.sql());
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql
}

/// Above this many dates a read names a range instead of listing every day: a query's text is
/// limited, and the registry's live days in a range are the table's days in that range.
const LISTED_DATES: usize = 500;

fn partition_condition(column: &str, dates: &[NaiveDate]) -> String {
    match (dates.first(), dates.last()) {
        (Some(first), Some(last)) if dates.len() > LISTED_DATES => format!(
            "`{column}` BETWEEN {} AND {}",
            date_literal(*first),
            date_literal(*last)
        ),
        _ => format!(
            "`{column}` IN ({})",
            dates
                .iter()
                .map(|d| date_literal(*d))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The statements that replace one day of the raw table and every materialized view with the
/// staged rows. The caller wraps them in a transaction.
pub fn replace_statements(
    project: &str,
    contract: &Contract,
    date: NaiveDate,
    staging: &TableAddress,
) -> Result<Vec<String>, FerryError> {
    let partition = contract.partition_column();
    let day = date_literal(date);
    let mut statements = Vec::new();
    let mut replace = |target: &TableAddress, columns: &[String], filter: Option<String>| {
        statements.push(format!(
            "DELETE FROM {} WHERE `{partition}` = {day}",
            target.sql()
        ));
        statements.push(format!(
            "INSERT INTO {} ({}) {}",
            target.sql(),
            column_list(columns),
            select(columns, staging, filter.as_deref(), None)
        ));
    };
    replace(
        &TableAddress::of(project, &contract.name)?,
        &table_column_names(contract, &contract.name),
        None,
    );
    for view in contract.materialized_views() {
        let filter = contract.view_filter(view)?;
        replace(
            &TableAddress::of(project, &view.name)?,
            &table_column_names(contract, &view.name),
            filter.to_bigquery_sql(),
        );
    }
    Ok(statements)
}

/// `BEGIN TRANSACTION; ...;` with or without the closing `COMMIT TRANSACTION;`.
pub fn transaction(statements: &[String], commit: bool) -> String {
    let mut sql = String::from("BEGIN TRANSACTION;\n");
    for statement in statements {
        sql.push_str(statement);
        sql.push_str(";\n");
    }
    if commit {
        sql.push_str("COMMIT TRANSACTION;\n");
    }
    sql
}

/// Job ids allow letters, digits, `_` and `-`; publication ids already fit, but be sure.
pub fn job_id(publication_id: &str, step: &str) -> String {
    let id: String = publication_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("ferry_{id}_{step}")
}

/// The authorized view's query: the target's columns, with personal columns the consumer may
/// not see in clear masked exactly as Ferry's own reads mask them.
pub fn consumer_view_query(
    contract: &Contract,
    source: &TableAddress,
    target: &str,
    clear_personal_data: bool,
) -> String {
    let mut expressions: Vec<String> = contract
        .table_columns(target)
        .into_iter()
        .map(|column| {
            let masked = !clear_personal_data
                && column.classification >= Classification::Personal
                && column.pii_handling == PiiHandling::Keep;
            let name = &column.name;
            match (masked, column.column_type) {
                (false, _) => format!("`{name}`"),
                (true, ColumnType::String) => {
                    format!("IF(`{name}` IS NULL, NULL, '{MASKED_TEXT}') AS `{name}`")
                }
                (true, _) => format!("CAST(NULL AS {}) AS `{name}`", field_type_sql(column)),
            }
        })
        .collect();
    expressions.push(format!("`{}`", contract.partition_column()));
    format!("SELECT {} FROM {}", expressions.join(", "), source.sql())
}

fn field_type_sql(column: &Column) -> &'static str {
    match field_type(column) {
        FieldType::String => "STRING",
        FieldType::Int64 => "INT64",
        FieldType::Float64 => "FLOAT64",
        FieldType::Bool => "BOOL",
        FieldType::Date => "DATE",
        FieldType::Timestamp => "TIMESTAMP",
        FieldType::Datetime => "DATETIME",
        FieldType::Numeric => "NUMERIC",
        FieldType::Bignumeric => "BIGNUMERIC",
        FieldType::Bytes => "BYTES",
        // `field_type` gives none of the others.
        _ => "STRING",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_ids_never_collide() {
        assert_eq!(escaped_id("team:a"), "team_3aa");
        assert_eq!(escaped_id("catalog.with_image"), "catalog_2ewith__image");
        let names = [
            "team:a_b", "team:a.b", "team:a:b", "team_a", "team:A", "team:a", "x__y.z", "x.y__z",
            "x_.y", "x._y", "x.y",
        ];
        let ids: std::collections::HashSet<String> = names.iter().map(|n| escaped_id(n)).collect();
        assert_eq!(ids.len(), names.len(), "{ids:?}");
        assert!(ids.iter().all(|id| {
            id.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        }));
    }

    fn contract() -> Contract {
        Contract::from_yaml(include_str!(
            "../../../../examples/product_catalog/contract.yaml"
        ))
        .expect("example contract")
    }

    #[test]
    fn replace_touches_one_day_of_the_raw_table_and_each_materialized_view() {
        let contract = contract();
        let staging = TableAddress::in_dataset("p", "ferry_staging", "s1");
        let day = NaiveDate::from_ymd_opt(2021, 4, 3).expect("date");
        let statements = replace_statements("p", &contract, day, &staging).expect("renders");
        let materialized = contract.materialized_views().count();
        assert_eq!(statements.len(), 2 * (1 + materialized));
        assert!(
            statements
                .iter()
                .step_by(2)
                .all(|s| s.starts_with("DELETE FROM `p.") && s.ends_with("= DATE '2021-04-03'"))
        );
        assert!(statements[1].contains("FROM `p.ferry_staging.s1`"));
        let sql = transaction(&statements, false);
        assert!(sql.starts_with("BEGIN TRANSACTION;"));
        assert!(!sql.contains("COMMIT"));
        assert!(transaction(&statements, true).ends_with("COMMIT TRANSACTION;\n"));
    }

    #[test]
    fn long_date_lists_become_a_range() {
        let first = NaiveDate::from_ymd_opt(2020, 1, 1).expect("date");
        let dates: Vec<NaiveDate> = first.iter_days().take(LISTED_DATES + 1).collect();
        let condition = partition_condition("d", &dates);
        assert!(
            condition.starts_with("`d` BETWEEN DATE '2020-01-01' AND"),
            "{condition}"
        );
        assert_eq!(
            partition_condition("d", &dates[..2]),
            "`d` IN (DATE '2020-01-01', DATE '2020-01-02')"
        );
    }

    #[test]
    fn labels_and_job_ids_use_allowed_characters() {
        assert_eq!(label_value("team:Catalog"), "team-catalog");
        assert_eq!(job_id("01HX.y", "load"), "ferry_01HX_y_load");
    }

    #[test]
    fn consumer_views_mask_personal_columns_unless_the_grant_allows_clear() {
        let contract = Contract::from_yaml(
            "name: crm.customers\nowner: team:crm\ncolumns:\n  - {name: id, type: int64, required: true}\n  - {name: email, type: string, classification: personal, legal_basis: contract, purpose: support, retention_days: 30}\n  - {name: age, type: int64, classification: personal, legal_basis: contract, purpose: support, retention_days: 30}\n",
        )
        .expect("contract");
        let source = TableAddress::of("p", "crm.customers").expect("address");
        let masked = consumer_view_query(&contract, &source, "crm.customers", false);
        assert_eq!(
            masked,
            "SELECT `id`, IF(`email` IS NULL, NULL, '***') AS `email`, CAST(NULL AS INT64) AS `age`, `partition_date` FROM `p.crm.customers`"
        );
        let clear = consumer_view_query(&contract, &source, "crm.customers", true);
        assert!(clear.starts_with("SELECT `id`, `email`, `age`"), "{clear}");
    }
}
