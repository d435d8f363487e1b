//! Contracts as Open Data Contract Standard v3.0.2 documents, the format datacontract-cli,
//! OpenMetadata and DataHub exchange. The schema, classifications, descriptions and quality rules
//! are written in ODCS's own terms (properties, `logicalType`, `quality` items with `rule` and
//! `mustBe…`), so other tools read them; what ODCS has no words for (PII handling, legal basis,
//! views, partitioning, the source format, the owner and major version) is under
//! `customProperties` with the `ferry` property. Each quality item also carries the Ferry rule it
//! came from, so export then register gives back the same contract.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::quality::{ColumnRule, DatasetRule};
use super::{Column, ColumnType, Contract};
use crate::error::FerryError;

pub const API_VERSION: &str = "v3.0.2";

/// Whether `text` is an ODCS document rather than Ferry's own YAML.
pub fn is_odcs(text: &str) -> bool {
    #[derive(Deserialize)]
    struct Head {
        #[serde(default)]
        kind: Option<String>,
        #[serde(default, rename = "apiVersion")]
        api_version: Option<String>,
    }
    serde_norway::from_str::<Head>(text).is_ok_and(|head| {
        head.kind.as_deref() == Some("DataContract")
            && head.api_version.is_some_and(|v| v.starts_with("v3"))
    })
}

/// One `customProperties` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CustomProperty {
    property: String,
    value: Value,
}

fn ferry_property(value: Value) -> Vec<CustomProperty> {
    vec![CustomProperty {
        property: "ferry".into(),
        value,
    }]
}

fn find_ferry(properties: &[CustomProperty]) -> Option<&Value> {
    properties
        .iter()
        .find(|p| p.property == "ferry")
        .map(|p| &p.value)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QualityItem {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rule: Option<String>,
    /// ODCS v3.1's name for `rule`; written as well, so tools of either version run it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    must_be: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    must_be_greater_or_equal_to: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    must_be_less_or_equal_to: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    arguments: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    severity: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    custom_properties: Vec<CustomProperty>,
    /// Whatever else an item holds (`mustBeGreaterThan`, `query`, …): Ferry writes none, and
    /// refuses an item that needs one rather than dropping a condition.
    #[serde(flatten, skip_serializing)]
    other: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Property {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    logical_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    physical_type: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    classification: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    quality: Vec<QualityItem>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    custom_properties: Vec<CustomProperty>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaObject {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    physical_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    logical_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    physical_type: Option<String>,
    #[serde(default)]
    properties: Vec<Property>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    quality: Vec<QualityItem>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Description {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    purpose: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    api_version: String,
    kind: String,
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    version: String,
    status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<Description>,
    #[serde(default)]
    schema: Vec<SchemaObject>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sla_properties: Vec<SlaProperty>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    custom_properties: Vec<CustomProperty>,
}

/// An SLA entry; Ferry writes `timeOfAvailability` (the exact SLA is in `customProperties`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlaProperty {
    property: String,
    value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    element: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    driver: Option<String>,
}

/// ODCS's logical type and BigQuery's physical type for a column.
fn types(column: &Column) -> (&'static str, String) {
    let logical = match column.column_type {
        ColumnType::String | ColumnType::Bytes => "string",
        ColumnType::Int64 => "integer",
        ColumnType::Float64 | ColumnType::Numeric => "number",
        ColumnType::Bool => "boolean",
        ColumnType::Date | ColumnType::Timestamp | ColumnType::Datetime => "date",
    };
    let physical = match (column.column_type, column.decimal()) {
        (ColumnType::Numeric, Some(d)) if d.fits_numeric() => {
            format!("NUMERIC({}, {})", d.precision, d.scale)
        }
        (ColumnType::Numeric, Some(d)) => format!("BIGNUMERIC({}, {})", d.precision, d.scale),
        (ColumnType::String, _) => "STRING".into(),
        (ColumnType::Int64, _) => "INT64".into(),
        (ColumnType::Float64, _) => "FLOAT64".into(),
        (ColumnType::Bool, _) => "BOOL".into(),
        (ColumnType::Date, _) => "DATE".into(),
        (ColumnType::Timestamp, _) => "TIMESTAMP".into(),
        (ColumnType::Datetime, _) => "DATETIME".into(),
        (ColumnType::Bytes, _) => "BYTES".into(),
        (ColumnType::Numeric, None) => "NUMERIC".into(),
    };
    (logical, physical)
}

impl QualityItem {
    /// A `text` item describing a Ferry rule, which it carries in `customProperties`; `library`
    /// sets the ODCS rule it maps to, when there is one.
    fn of(description: String, severity: super::Severity, ferry_rule: Value) -> Self {
        let severity: &'static str = severity.into();
        Self {
            kind: "text".into(),
            rule: None,
            metric: None,
            description: Some(description),
            must_be: None,
            must_be_greater_or_equal_to: None,
            must_be_less_or_equal_to: None,
            arguments: None,
            severity: Some(severity.to_owned()),
            custom_properties: ferry_property(ferry_rule),
            other: serde_json::Map::new(),
        }
    }

    /// ODCS v3.0's `rule` name and v3.1's `metric` name for the same check.
    fn library(mut self, rule: &str, metric: &str) -> Self {
        self.kind = "library".into();
        self.rule = Some(rule.into());
        self.metric = Some(metric.into());
        self
    }
}

fn column_quality(rule: &ColumnRule) -> Result<QualityItem, FerryError> {
    let item = QualityItem::of(rule.describe(), rule.severity, to_value(rule)?);
    let zero = Some(json!(0));
    // min, max and max_length have no ODCS v3.0 library rule: they stay text, checked by Ferry
    // from the custom property.
    Ok(if rule.not_null {
        QualityItem {
            must_be: zero,
            ..item.library("nullCheck", "nullValues")
        }
    } else if rule.unique {
        QualityItem {
            must_be: zero,
            ..item.library("duplicateCount", "duplicateValues")
        }
    } else if let Some(values) = &rule.accepted_values {
        QualityItem {
            must_be: zero,
            arguments: Some(json!({ "validValues": values })),
            ..item.library("invalidCount", "invalidValues")
        }
    } else if let Some(pattern) = &rule.pattern {
        QualityItem {
            must_be: zero,
            arguments: Some(json!({ "pattern": pattern })),
            ..item.library("invalidCount", "invalidValues")
        }
    } else {
        item
    })
}

fn dataset_quality(rule: &DatasetRule) -> Result<QualityItem, FerryError> {
    let item = QualityItem::of(rule.describe(), rule.severity, to_value(rule)?);
    // row_count_change has no ODCS rule: it stays text.
    Ok(if let Some(columns) = &rule.unique {
        QualityItem {
            must_be: Some(json!(0)),
            arguments: Some(json!({ "properties": columns })),
            ..item.library("duplicateCount", "duplicateValues")
        }
    } else if let Some(count) = &rule.row_count {
        QualityItem {
            must_be_greater_or_equal_to: count.min.map(|v| json!(v)),
            must_be_less_or_equal_to: count.max.map(|v| json!(v)),
            ..item.library("rowCount", "rowCount")
        }
    } else {
        item
    })
}

fn to_value(value: &impl Serialize) -> Result<Value, FerryError> {
    serde_json::to_value(value)
        .map_err(|e| FerryError::Internal(format!("rendering a contract part: {e}")))
}

/// `contract` (registered at `version`, e.g. `1.3`) as an ODCS v3.0.2 YAML document.
pub fn to_odcs(contract: &Contract, version: &str) -> Result<String, FerryError> {
    let table = contract
        .name
        .split_once('.')
        .map_or(contract.name.as_str(), |(_, t)| t);
    let mut properties = Vec::with_capacity(contract.columns.len());
    for column in &contract.columns {
        let (logical, physical) = types(column);
        // What ODCS has no field for, exactly as Ferry's YAML writes it.
        let mut ferry = to_value(column)?;
        if let Value::Object(map) = &mut ferry {
            for native in [
                "name",
                "required",
                "description",
                "classification",
                "quality",
            ] {
                map.remove(native);
            }
        }
        properties.push(Property {
            name: column.name.clone(),
            logical_type: Some(logical.into()),
            physical_type: Some(physical),
            required: column.required,
            description: (!column.description.is_empty()).then(|| column.description.clone()),
            classification: Some(column.classification.as_str().into()),
            quality: column
                .quality
                .iter()
                .map(column_quality)
                .collect::<Result<_, _>>()?,
            custom_properties: ferry_property(ferry),
        });
    }
    let mut rest = to_value(contract)?;
    if let Value::Object(map) = &mut rest {
        for native in ["name", "description", "columns", "quality"] {
            map.remove(native);
        }
    }
    let document = Document {
        api_version: API_VERSION.into(),
        kind: "DataContract".into(),
        id: contract.name.clone(),
        name: Some(contract.name.clone()),
        version: format!("{version}.0"),
        status: "active".into(),
        description: (!contract.description.is_empty()).then(|| Description {
            purpose: Some(contract.description.clone()),
        }),
        schema: vec![SchemaObject {
            name: table.into(),
            physical_name: Some(contract.name.clone()),
            logical_type: Some("object".into()),
            physical_type: Some("table".into()),
            properties,
            quality: contract
                .quality
                .iter()
                .map(dataset_quality)
                .collect::<Result<_, _>>()?,
        }],
        sla_properties: contract
            .sla
            .iter()
            .map(|sla| SlaProperty {
                property: "timeOfAvailability".into(),
                value: json!(format!("{} {}", sla.available_by, sla.timezone)),
                element: Some(format!("{table}.{}", contract.partition_column())),
                driver: Some("operational".into()),
            })
            .collect(),
        custom_properties: ferry_property(rest),
    };
    serde_norway::to_string(&document)
        .map_err(|e| FerryError::Internal(format!("rendering ODCS: {e}")))
}

/// Reads an ODCS v3 document as a Ferry contract (validated like any other).
pub fn from_odcs(text: &str) -> Result<Contract, FerryError> {
    let invalid = |msg: String| FerryError::InvalidContract(format!("ODCS document: {msg}"));
    let document: Document = serde_norway::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let [object] = document.schema.as_slice() else {
        return Err(invalid(format!(
            "Ferry reads one schema object (one table), this document has {}",
            document.schema.len()
        )));
    };
    let ferry = find_ferry(&document.custom_properties)
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut map = match ferry {
        Value::Object(map) => map,
        _ => return Err(invalid("customProperties ferry must be a mapping".into())),
    };
    let name = object
        .physical_name
        .clone()
        .or(document.name.clone())
        .unwrap_or(document.id.clone());
    map.insert("name".into(), json!(name));
    if let Some(purpose) = document
        .description
        .as_ref()
        .and_then(|d| d.purpose.clone())
    {
        map.insert("description".into(), json!(purpose));
    }
    let mut columns = Vec::with_capacity(object.properties.len());
    for property in &object.properties {
        let mut column = match find_ferry(&property.custom_properties) {
            Some(Value::Object(column)) => column.clone(),
            Some(_) => {
                return Err(invalid(format!(
                    "property {}: customProperties ferry must be a mapping",
                    property.name
                )));
            }
            None => {
                let mut column = serde_json::Map::new();
                column.insert("type".into(), json!(column_type_of(property)?));
                if let Some((precision, scale)) = decimal_bounds(property) {
                    column.insert("precision".into(), json!(precision));
                    column.insert("scale".into(), json!(scale));
                }
                column
            }
        };
        column.insert("name".into(), json!(property.name));
        column.insert("required".into(), json!(property.required));
        if let Some(description) = &property.description {
            column.insert("description".into(), json!(description));
        }
        if let Some(classification) = &property.classification {
            column.insert(
                "classification".into(),
                json!(classification.to_lowercase()),
            );
        }
        let rules = property
            .quality
            .iter()
            .map(|item| rule_of(item, &property.name))
            .collect::<Result<Vec<_>, _>>()?;
        if !rules.is_empty() {
            column.insert("quality".into(), Value::Array(rules));
        }
        columns.push(Value::Object(column));
    }
    map.insert("columns".into(), Value::Array(columns));
    let rules = object
        .quality
        .iter()
        .map(|item| rule_of(item, &object.name))
        .collect::<Result<Vec<_>, _>>()?;
    if !rules.is_empty() {
        map.insert("quality".into(), Value::Array(rules));
    }
    let contract: Contract =
        serde_json::from_value(Value::Object(map)).map_err(|e| invalid(e.to_string()))?;
    contract.validate()?;
    Ok(contract)
}

/// A quality item as the Ferry rule it carries; an item Ferry cannot check is refused, so a
/// registered contract never promises a check nobody runs.
fn rule_of(item: &QualityItem, element: &str) -> Result<Value, FerryError> {
    if let Some(rule) = find_ferry(&item.custom_properties) {
        return Ok(rule.clone());
    }
    let severity = item.severity.clone().unwrap_or_else(|| "error".into());
    let refused = |why: &str| {
        FerryError::InvalidContract(format!(
            "ODCS document: {element}: quality item {:?} {why}",
            item.rule
                .clone()
                .or(item.description.clone())
                .unwrap_or_default()
        ))
    };
    if let Some(key) = item
        .other
        .keys()
        .find(|k| k.starts_with("mustBe") || *k == "query")
    {
        return Err(refused(&format!(
            "uses {key}, which Ferry does not check while publishing"
        )));
    }
    if let Some(Value::Object(args)) = &item.arguments
        && args.contains_key("validValues")
        && args.contains_key("pattern")
    {
        return Err(refused(
            "names both validValues and pattern; write them as two items",
        ));
    }
    let zero = item.must_be.as_ref().is_some_and(|v| v == &json!(0));
    let rule = match (item.rule.as_deref().or(item.metric.as_deref()), zero) {
        (Some("nullCheck" | "nullValues"), true) => json!({"not_null": true}),
        (Some("duplicateCount" | "duplicateValues"), true) => match &item.arguments {
            Some(Value::Object(args)) if args.contains_key("properties") => {
                json!({"unique": args["properties"]})
            }
            _ => json!({"unique": true}),
        },
        (Some("invalidCount" | "invalidValues"), true) => match &item.arguments {
            Some(Value::Object(args)) if args.contains_key("validValues") => {
                json!({"accepted_values": args["validValues"]})
            }
            Some(Value::Object(args)) if args.contains_key("pattern") => {
                json!({"pattern": args["pattern"]})
            }
            _ => Value::Null,
        },
        (Some("rowCount"), _) if item.must_be.is_none() => json!({"row_count": {
            "min": item.must_be_greater_or_equal_to,
            "max": item.must_be_less_or_equal_to,
        }}),
        _ => Value::Null,
    };
    let Value::Object(mut rule) = rule else {
        return Err(FerryError::InvalidContract(format!(
            "ODCS document: {element}: quality item {:?} is not one Ferry checks while \
             publishing (nullCheck, duplicateCount, invalidCount with validValues or pattern, \
             rowCount)",
            item.rule
                .clone()
                .or(item.description.clone())
                .unwrap_or_default()
        )));
    };
    if let Some(Value::Object(count)) = rule.get_mut("row_count") {
        count.retain(|_, v| !v.is_null());
    }
    rule.insert(
        "severity".into(),
        json!(if severity.starts_with("warn") {
            "warn"
        } else {
            "error"
        }),
    );
    Ok(Value::Object(rule))
}

/// `NUMERIC(12, 2)` as (12, 2).
fn decimal_bounds(property: &Property) -> Option<(u8, u8)> {
    let physical = property.physical_type.as_deref()?;
    let (_, rest) = physical.split_once('(')?;
    let (precision, scale) = rest.trim_end_matches(')').split_once(',')?;
    Some((precision.trim().parse().ok()?, scale.trim().parse().ok()?))
}

/// A column's type from a document without Ferry's custom property: BigQuery's physical type
/// when given, else ODCS's logical type.
fn column_type_of(property: &Property) -> Result<&'static str, FerryError> {
    let physical = property
        .physical_type
        .as_deref()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let base = physical
        .split('(')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    Ok(match (base.as_str(), property.logical_type.as_deref()) {
        ("STRING", _) => "string",
        ("INT64" | "INTEGER" | "BIGINT", _) => "int64",
        ("FLOAT64" | "DOUBLE" | "FLOAT", _) => "float64",
        ("NUMERIC" | "BIGNUMERIC" | "DECIMAL", _) => "numeric",
        ("BOOL" | "BOOLEAN", _) => "bool",
        ("DATE", _) => "date",
        ("TIMESTAMP", _) => "timestamp",
        ("DATETIME", _) => "datetime",
        ("BYTES", _) => "bytes",
        (_, Some("string")) => "string",
        (_, Some("integer")) => "int64",
        (_, Some("number")) => "float64",
        (_, Some("boolean")) => "bool",
        (_, Some("date")) => "date",
        (_, other) => {
            return Err(FerryError::InvalidContract(format!(
                "ODCS document: property {}: type {} ({}) has no Ferry column type",
                property.name,
                other.unwrap_or("none"),
                property
                    .physical_type
                    .as_deref()
                    .unwrap_or("no physical type")
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::tests::catalog;

    #[test]
    fn export_then_import_gives_back_the_same_contract() {
        let contract = catalog();
        let odcs = to_odcs(&contract, "1.2").expect("exports");
        assert!(is_odcs(&odcs), "{odcs}");
        assert!(odcs.contains("apiVersion: v3.0.2"), "{odcs}");
        assert!(odcs.contains("physicalType: INT64"), "{odcs}");
        assert_eq!(from_odcs(&odcs).expect("imports"), contract);
        assert!(!is_odcs(&contract.to_yaml()));
    }

    #[test]
    fn a_feed_travels_in_custom_properties() {
        let mut contract = catalog();
        contract.feed = Some(crate::contract::Feed {
            source_template: "s3://catalog-drops/product_catalog_{date:%Y%m%d}.csv".into(),
            check_every: "1h 30m".into(),
            lookback_days: 5,
        });
        let odcs = to_odcs(&contract, "1.3").expect("exports");
        assert!(odcs.contains("product_catalog_{date:%Y%m%d}.csv"), "{odcs}");
        assert_eq!(from_odcs(&odcs).expect("imports"), contract);
    }

    #[test]
    fn a_document_from_another_tool_is_read_by_its_own_terms() {
        let text = r#"
apiVersion: v3.0.2
kind: DataContract
id: shop.orders
version: 1.0.0
status: active
schema:
  - name: orders
    physicalName: shop.orders
    properties:
      - {name: id, logicalType: integer, required: true, quality: [{type: library, rule: duplicateCount, mustBe: 0}]}
      - {name: amount, physicalType: "NUMERIC(12, 2)"}
      - {name: note, logicalType: string}
customProperties:
  - {property: ferry, value: {owner: "team:shop"}}
"#;
        let contract = from_odcs(text).expect("imports");
        assert_eq!(contract.name, "shop.orders");
        assert_eq!(contract.columns[0].column_type, ColumnType::Int64);
        assert!(contract.columns[0].quality[0].unique);
        assert_eq!(contract.columns[1].column_type, ColumnType::Numeric);
        assert_eq!(
            contract.columns[1].decimal(),
            Some(crate::contract::DecimalSpec {
                precision: 12,
                scale: 2
            })
        );
        let stricter = text.replace("mustBe: 0}", "mustBeGreaterThan: 0}");
        let err = from_odcs(&stricter).unwrap_err().to_string();
        assert!(err.contains("mustBeGreaterThan"), "{err}");
        let unchecked = text.replace("rule: duplicateCount, mustBe: 0", "rule: freshness");
        let err = from_odcs(&unchecked).unwrap_err().to_string();
        assert!(err.contains("not one Ferry checks"), "{err}");
    }
}
