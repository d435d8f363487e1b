//! Dataset contracts: what a dataset is, who owns it, how its source is read and which views
//! derive from it. Contracts are YAML files reviewed in git; this module parses and validates
//! them. It knows nothing of gRPC or of any warehouse.

mod evolution;
mod feed;
mod filter;
mod freshness;
pub mod odcs;
pub mod quality;
pub mod values;

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::FerryError;

pub use evolution::{ContractVersion, Evolution, plan_evolution};
pub use feed::Feed;
pub use filter::{TypedLiteral, ViewFilter};
pub use freshness::Sla;
pub use quality::{ColumnRule, DatasetRule, RuleOutcome, Severity};
pub use values::DecimalSpec;

/// A column's logical type. Every warehouse maps these to its own types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    String,
    Int64,
    Float64,
    Bool,
    Date,
    /// An instant, UTC, in microseconds.
    Timestamp,
    /// A civil date and time with no zone, in microseconds.
    Datetime,
    /// An exact decimal with a precision and a scale.
    Numeric,
    /// Bytes; base64 in text formats.
    Bytes,
}

impl ColumnType {
    /// Whether a column of this type may give a `format` for reading its text.
    pub fn takes_format(self) -> bool {
        matches!(self, Self::Date | Self::Timestamp | Self::Datetime)
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::String => "string",
            Self::Int64 => "int64",
            Self::Float64 => "float64",
            Self::Bool => "bool",
            Self::Date => "date",
            Self::Timestamp => "timestamp",
            Self::Datetime => "datetime",
            Self::Numeric => "numeric",
            Self::Bytes => "bytes",
        };
        f.write_str(name)
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Classification {
    #[default]
    Public,
    Internal,
    /// GDPR personal data.
    Personal,
    /// GDPR special categories.
    Sensitive,
}

impl Classification {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PiiHandling {
    #[default]
    Keep,
    Pseudonymize,
    Drop,
}

/// GDPR article 6 lawful bases.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum LegalBasis {
    Consent,
    Contract,
    LegalObligation,
    VitalInterests,
    PublicTask,
    LegitimateInterests,
}

impl LegalBasis {
    pub const ALL: &[LegalBasis] = <Self as strum::VariantArray>::VARIANTS;

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    pub name: String,
    /// The header (or key) naming this column in source files, when it is not `name`:
    /// `Contact Phone Number` for `contact_phone_number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_name: Option<String>,
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    /// How a date, timestamp or datetime is written in text sources when not in ISO 8601
    /// (strftime: `%d/%m/%Y %H:%M`). A timestamp format without an offset reads UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// A numeric column's significant digits (default 38) and digits after the point (default 9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u8>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub classification: Classification,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub pii_handling: PiiHandling,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_basis: Option<LegalBasis>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub purpose: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// What a good value of this column is, checked on every row of a publish.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quality: Vec<ColumnRule>,
}

impl Column {
    /// The name this column has in source files.
    pub fn source_key(&self) -> &str {
        self.source_name.as_deref().unwrap_or(&self.name)
    }

    /// A numeric column's bounds; NUMERIC's (38, 9) unless the contract says otherwise.
    pub fn decimal(&self) -> Option<DecimalSpec> {
        (self.column_type == ColumnType::Numeric).then(|| DecimalSpec {
            precision: self.precision.unwrap_or(DecimalSpec::NUMERIC.precision),
            scale: self.scale.unwrap_or(DecimalSpec::NUMERIC.scale),
        })
    }

    /// Each quality rule applies to this column's type and handling.
    fn validate_quality(&self) -> Result<(), FerryError> {
        let invalid = |msg: String| {
            Err(FerryError::InvalidContract(format!(
                "column {:?}: quality rule {msg}",
                self.name
            )))
        };
        if self.quality.len() > 32 {
            return invalid("list: at most 32 rules a column".into());
        }
        for (i, rule) in self.quality.iter().enumerate() {
            if self.quality[..i].contains(rule) {
                return invalid(format!("{} is listed twice", rule.describe()));
            }
            if let Err(e) = rule.check(self) {
                return invalid(format!("{}: {e}", rule.describe()));
            }
            if self.pii_handling == PiiHandling::Drop {
                return invalid(format!(
                    "{}: the column is dropped at publish and cannot be checked",
                    rule.describe()
                ));
            }
            if self.pii_handling == PiiHandling::Pseudonymize
                && (rule.accepted_values.is_some()
                    || rule.pattern.is_some()
                    || rule.max_length.is_some())
            {
                return invalid(format!(
                    "{}: a pseudonymized column stores pseudonyms; only not_null and unique \
                     apply to it",
                    rule.describe()
                ));
            }
        }
        Ok(())
    }

    /// Type parameters that only some types take, each checked.
    fn validate_type_parameters(&self) -> Result<(), FerryError> {
        let invalid = |msg: String| {
            Err(FerryError::InvalidContract(format!(
                "column {:?}: {msg}",
                self.name
            )))
        };
        if let Some(format) = &self.format {
            if !self.column_type.takes_format() {
                return invalid(format!(
                    "format applies to date, timestamp and datetime columns, not {}",
                    self.column_type
                ));
            }
            if let Err(e) = values::check_format(format) {
                return invalid(format!("format {e}"));
            }
            if self.column_type != ColumnType::Timestamp && values::format_has_zone(format) {
                return invalid(format!(
                    "format {format:?} reads an offset, which a {} cannot keep; use a timestamp \
                     column",
                    self.column_type
                ));
            }
        }
        match self.decimal() {
            Some(spec) => {
                if let Err(e) = spec.check() {
                    return invalid(e);
                }
            }
            None if self.precision.is_some() || self.scale.is_some() => {
                return invalid("precision and scale apply to numeric columns only".into());
            }
            None => {}
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partitioning {
    /// Only `day` exists today.
    #[serde(default = "Partitioning::day")]
    pub granularity: String,
    /// The column each row's partition date is stored in.
    #[serde(default = "Partitioning::default_column")]
    pub column: String,
    /// A date column of the data whose value must be the published day in every row (for
    /// extracts taken by `updated_at`); a row of another day is a row error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_column: Option<String>,
}

impl Partitioning {
    fn day() -> String {
        "day".into()
    }
    fn default_column() -> String {
        "partition_date".into()
    }
}

impl Default for Partitioning {
    fn default() -> Self {
        Self {
            granularity: Self::day(),
            column: Self::default_column(),
            from_column: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvOptions {
    #[serde(default = "CsvOptions::comma")]
    pub delimiter: char,
    #[serde(default = "yes")]
    pub has_header: bool,
    /// Empty fields load as NULL, as BigQuery does.
    #[serde(default = "yes")]
    pub empty_as_null: bool,
    /// The character that quotes a field.
    #[serde(default = "CsvOptions::double_quote")]
    pub quote: char,
    /// The character that escapes a quote inside a quoted field (`\` for `\"`). A quote written
    /// twice (`""`, as RFC 4180 says) is read as one quote whether or not there is an escape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escape: Option<char>,
    /// Field values that mean NULL, compared exactly (`["NULL", "\\N"]`); an empty field is NULL
    /// by `empty_as_null`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub null_values: Vec<String>,
    /// Lines before the header (or the first record) that are not data: a title, a comment.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skip_rows: u64,
    /// The file's character encoding, transcoded to UTF-8 while streaming.
    #[serde(default)]
    pub encoding: TextEncoding,
}

impl CsvOptions {
    fn comma() -> char {
        ','
    }
    fn double_quote() -> char {
        '"'
    }
}

fn yes() -> bool {
    true
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: ',',
            has_header: true,
            empty_as_null: true,
            quote: '"',
            escape: None,
            null_values: Vec::new(),
            skip_rows: 0,
            encoding: TextEncoding::default(),
        }
    }
}

/// How a text source's bytes map to characters.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr,
)]
pub enum TextEncoding {
    #[default]
    #[serde(rename = "utf-8")]
    #[strum(serialize = "utf-8")]
    Utf8,
    /// ISO-8859-1: each byte is the code point of the same number.
    #[serde(rename = "latin-1")]
    #[strum(serialize = "latin-1")]
    Latin1,
    /// Latin-1 with printable characters (€, ‚, “, …) where ISO-8859-1 has C1 controls.
    #[serde(rename = "windows-1252")]
    #[strum(serialize = "windows-1252")]
    Windows1252,
}

/// How a source file is compressed. The checksum is always of the bytes as stored.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Compression {
    /// gzip or zstd when the file starts with their magic bytes, otherwise none.
    #[default]
    Auto,
    None,
    Gzip,
    Zstd,
}

/// How a source file's records are written.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum DataFormat {
    #[default]
    Csv,
    /// Newline-delimited JSON: one object per line, keys are column (source) names.
    Ndjson,
    /// Apache Parquet: columns matched by (source) name, read row group by row group.
    Parquet,
}

/// What a record's keys that no column names mean.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum UnknownFields {
    /// The record is a row error: a producer sends data the contract does not govern.
    #[default]
    Refuse,
    Ignore,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceFormat {
    #[serde(default)]
    pub format: DataFormat,
    #[serde(default)]
    pub csv: CsvOptions,
    /// For NDJSON: keys no column is read from.
    #[serde(default)]
    pub unknown_fields: UnknownFields,
    /// How the file is compressed; `auto` tells from its first bytes.
    #[serde(default)]
    pub compression: Compression,
    /// Rows that fail validation are quarantined instead of failing the publish, up to this many.
    #[serde(default)]
    pub max_rejected_rows: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Materialization {
    /// Stored per partition, replaced atomically with the raw partition.
    #[default]
    Materialized,
    /// Evaluated over the raw table at read time.
    OnRead,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DerivedView {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Projected columns in order; empty means all of the dataset's columns.
    #[serde(default)]
    pub columns: Vec<String>,
    /// A restricted SQL boolean expression; empty means every row.
    #[serde(default)]
    pub filter: String,
    #[serde(default)]
    pub materialization: Materialization,
}

/// A dataset contract as its owners write it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    pub name: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The declared major version; a breaking change requires raising it.
    #[serde(default = "Contract::first_major")]
    pub major_version: u32,
    pub columns: Vec<Column>,
    #[serde(default)]
    pub partitioning: Partitioning,
    #[serde(default)]
    pub source: SourceFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    #[serde(default)]
    pub views: Vec<DerivedView>,
    /// What a good day of this dataset is: compound keys and row counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quality: Vec<DatasetRule>,
    /// When each day's partition is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla: Option<Sla>,
    /// Where the server picks each day's file up by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed: Option<Feed>,
}

impl Contract {
    fn first_major() -> u32 {
        1
    }

    /// Parses and validates a contract written in Ferry's YAML or as an ODCS v3 document.
    pub fn from_yaml(text: &str) -> Result<Self, FerryError> {
        if odcs::is_odcs(text) {
            return odcs::from_odcs(text);
        }
        let contract: Contract = serde_norway::from_str(text)
            .map_err(|e| FerryError::InvalidContract(format!("contract YAML: {e}")))?;
        contract.validate()?;
        Ok(contract)
    }

    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).unwrap_or_else(|e| format!("# cannot render contract: {e}\n"))
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn view(&self, name: &str) -> Option<&DerivedView> {
        self.views.iter().find(|v| v.name == name)
    }

    /// The columns stored in the warehouse, in order: dropped PII columns are never stored.
    pub fn stored_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns
            .iter()
            .filter(|c| c.pii_handling != PiiHandling::Drop)
    }

    /// The views stored per partition, which every publish replaces with the raw partition.
    pub fn materialized_views(&self) -> impl Iterator<Item = &DerivedView> {
        self.views
            .iter()
            .filter(|v| v.materialization == Materialization::Materialized)
    }

    /// A view's filter, checked against this contract.
    pub fn view_filter(&self, view: &DerivedView) -> Result<ViewFilter, FerryError> {
        ViewFilter::parse(&view.filter, self)
            .map_err(|e| FerryError::InvalidContract(format!("view {}: {e}", view.name)))
    }

    /// The stored columns a view projects, in order.
    pub fn view_columns<'a>(&'a self, view: &'a DerivedView) -> Vec<&'a Column> {
        if view.columns.is_empty() {
            self.stored_columns().collect()
        } else {
            view.columns
                .iter()
                .filter_map(|name| self.column(name))
                .collect()
        }
    }

    /// The namespace part of the dataset's `namespace.name`.
    pub fn namespace(&self) -> &str {
        namespace_of(&self.name)
    }

    /// Checks everything that can be checked without the registry.
    pub fn validate(&self) -> Result<(), FerryError> {
        let invalid = |msg: String| Err(FerryError::InvalidContract(msg));
        validate_qualified_name(&self.name, "dataset")?;
        let namespace = self.namespace();
        if is_reserved_namespace(namespace) {
            return invalid(format!(
                "namespace {namespace:?} is reserved for Ferry's own datasets (ferry, ferry_*)"
            ));
        }
        if self.owner.trim().is_empty() {
            return invalid(format!(
                "dataset {}: owner is required (e.g. team:catalog)",
                self.name
            ));
        }
        if self.major_version == 0 {
            return invalid("major_version starts at 1".into());
        }
        if self.columns.is_empty() {
            return invalid(format!(
                "dataset {}: at least one column is required",
                self.name
            ));
        }
        if self.partitioning.granularity != "day" {
            return invalid(format!(
                "partitioning.granularity {:?} is not supported; only \"day\" is",
                self.partitioning.granularity
            ));
        }
        validate_identifier(&self.partitioning.column, "partition column")?;
        let mut seen = HashSet::new();
        for column in &self.columns {
            validate_identifier(&column.name, "column")?;
            if !seen.insert(column.name.to_ascii_lowercase()) {
                return invalid(format!("column {:?} is declared twice", column.name));
            }
            if column.name.eq_ignore_ascii_case(&self.partition_column()) {
                return invalid(format!(
                    "column {:?} clashes with the partition column; rename it or set partitioning.column",
                    column.name
                ));
            }
            self.validate_personal_data(column)?;
            column.validate_type_parameters()?;
            column.validate_quality()?;
            if column.pii_handling == PiiHandling::Pseudonymize
                && column.column_type != ColumnType::String
            {
                return invalid(format!(
                    "column {:?}: pseudonymize applies to string columns only",
                    column.name
                ));
            }
        }
        if let Some(name) = &self.partitioning.from_column {
            match self.column(name) {
                Some(c) if c.column_type == ColumnType::Date && c.required => {}
                Some(_) => {
                    return invalid(format!(
                        "partitioning.from_column {name:?} must be a required date column"
                    ));
                }
                None => {
                    return invalid(format!(
                        "partitioning.from_column {name:?} is not a column of dataset {}",
                        self.name
                    ));
                }
            }
        }
        let rules: usize = self.columns.iter().map(|c| c.quality.len()).sum();
        if rules + self.quality.len() > 256 || self.quality.len() > 32 {
            return invalid(format!(
                "dataset {}: at most 256 quality rules in all and 32 dataset rules",
                self.name
            ));
        }
        for (i, rule) in self.quality.iter().enumerate() {
            if self.quality[..i].contains(rule) {
                return invalid(format!("quality rule {} is listed twice", rule.describe()));
            }
        }
        for rule in &self.quality {
            rule.check(&self.columns).map_err(|e| {
                FerryError::InvalidContract(format!("quality rule {}: {e}", rule.describe()))
            })?;
            for name in rule.unique.iter().flatten() {
                if self
                    .column(name)
                    .is_some_and(|c| c.pii_handling == PiiHandling::Drop)
                {
                    return invalid(format!(
                        "quality rule {}: column {name:?} is dropped at publish and cannot be checked",
                        rule.describe()
                    ));
                }
            }
        }
        if let Some(sla) = &self.sla {
            sla.check().map_err(FerryError::InvalidContract)?;
        }
        if let Some(feed) = &self.feed {
            feed.check().map_err(FerryError::InvalidContract)?;
        }
        self.validate_source_names()?;
        self.validate_csv_options()?;
        let mut view_names = HashSet::new();
        for view in &self.views {
            validate_qualified_name(&view.name, "view")?;
            if namespace_of(&view.name) != namespace {
                return invalid(format!(
                    "view {} must be in the dataset's namespace {namespace:?}: a contract \
                     names tables only where its team owns the names",
                    view.name
                ));
            }
            if view.name == self.name || !view_names.insert(view.name.as_str()) {
                return invalid(format!("view name {:?} is used twice", view.name));
            }
            for name in &view.columns {
                match self.column(name) {
                    None => {
                        return invalid(format!(
                            "view {}: column {name:?} is not in dataset {}",
                            view.name, self.name
                        ));
                    }
                    Some(c) if c.pii_handling == PiiHandling::Drop => {
                        return invalid(format!(
                            "view {}: column {name:?} is dropped at publish and cannot be projected",
                            view.name
                        ));
                    }
                    Some(_) => {}
                }
            }
            self.view_filter(view)?;
        }
        Ok(())
    }

    /// Each column is found in a file by one name, and no two columns by the same one.
    fn validate_source_names(&self) -> Result<(), FerryError> {
        let mut keys = HashSet::new();
        for column in &self.columns {
            if let Some(source_name) = &column.source_name
                && (source_name.trim().is_empty()
                    || source_name.trim() != source_name
                    || source_name.chars().any(char::is_control)
                    || source_name.len() > 300)
            {
                return Err(FerryError::InvalidContract(format!(
                    "column {:?}: source_name must be 1 to 300 characters without \
                     surrounding spaces or control characters",
                    column.name
                )));
            }
            if !keys.insert(column.source_key()) {
                return Err(FerryError::InvalidContract(format!(
                    "column {:?}: another column is read from the same source name {:?}",
                    column.name,
                    column.source_key()
                )));
            }
        }
        Ok(())
    }

    fn validate_csv_options(&self) -> Result<(), FerryError> {
        let invalid = |msg: &str| Err(FerryError::InvalidContract(msg.into()));
        let csv = &self.source.csv;
        let special = [Some(csv.delimiter), Some(csv.quote), csv.escape];
        if special
            .iter()
            .flatten()
            .any(|c| !c.is_ascii() || *c == '\n' || *c == '\r')
        {
            return invalid(
                "source.csv.delimiter, quote and escape must each be one ASCII character other \
                 than a line break",
            );
        }
        if csv.delimiter == csv.quote || csv.escape == Some(csv.delimiter) {
            return invalid("source.csv.delimiter must differ from quote and escape");
        }
        if csv.escape == Some(csv.quote) {
            return invalid(
                "source.csv.escape must differ from quote; a doubled quote is always read as one",
            );
        }
        // Options a format would ignore are refused, so a contract never promises what is not
        // done (`null_values: [NULL]` on NDJSON would load the text "NULL").
        match self.source.format {
            DataFormat::Ndjson | DataFormat::Parquet if *csv != CsvOptions::default() => {
                return invalid("source.csv options apply to CSV sources only");
            }
            DataFormat::Parquet if self.columns.iter().any(|c| c.format.is_some()) => {
                return invalid(
                    "a column format applies to text sources only; Parquet values are typed",
                );
            }
            DataFormat::Csv if self.source.unknown_fields == UnknownFields::Ignore => {
                return invalid(
                    "source.unknown_fields applies to NDJSON and Parquet sources only; a CSV \
                     header with columns the contract lacks is refused",
                );
            }
            _ => {}
        }
        if csv.null_values.len() > 32 || csv.null_values.iter().any(|v| v.len() > 64) {
            return invalid("source.csv.null_values: at most 32 values of at most 64 bytes");
        }
        if csv.skip_rows > 1000 {
            return invalid("source.csv.skip_rows: at most 1000 lines");
        }
        Ok(())
    }

    /// GDPR: personal and sensitive columns that are stored need a legal basis, a purpose and a
    /// retention, so every copy of the data can say why it exists and when it goes.
    fn validate_personal_data(&self, column: &Column) -> Result<(), FerryError> {
        if column.classification < Classification::Personal
            || column.pii_handling == PiiHandling::Drop
        {
            return Ok(());
        }
        let mut missing = Vec::new();
        if column.legal_basis.is_none() {
            missing.push(format!(
                "legal_basis (one of {})",
                LegalBasis::ALL
                    .iter()
                    .map(|b| b.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if column.purpose.trim().is_empty() {
            missing.push("purpose".to_owned());
        }
        if column.retention_days.or(self.retention_days).is_none() {
            missing.push("retention_days (on the column or the dataset)".to_owned());
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(FerryError::InvalidContract(format!(
                "column {:?} is {} data and needs {}; or set pii_handling: drop",
                column.name,
                column.classification.as_str(),
                missing.join(", ")
            )))
        }
    }

    /// The stored columns of the dataset or one of its views. Views inherit each column's
    /// classification because they point at the dataset's columns.
    pub fn table_columns(&self, table: &str) -> Vec<&Column> {
        match self.view(table) {
            Some(view) => self.view_columns(view),
            None => self.stored_columns().collect(),
        }
    }

    /// Whether the table (dataset or view) stores personal or sensitive data in clear.
    pub fn has_personal_data_in_clear(&self, table: &str) -> bool {
        self.table_columns(table).iter().any(|c| {
            c.classification >= Classification::Personal && c.pii_handling == PiiHandling::Keep
        })
    }

    /// Whether publishing needs the server's pseudonymization key.
    pub fn needs_pseudonymization(&self) -> bool {
        self.columns
            .iter()
            .any(|c| c.pii_handling == PiiHandling::Pseudonymize)
    }

    /// The shortest retention that applies to stored partitions: the dataset's, or a stored
    /// personal column's when that is shorter.
    pub fn effective_retention_days(&self) -> Option<u32> {
        self.stored_columns()
            .filter(|c| c.classification >= Classification::Personal)
            .filter_map(|c| c.retention_days)
            .chain(self.retention_days)
            .min()
    }

    pub fn partition_column(&self) -> String {
        self.partitioning.column.clone()
    }
}

fn validate_identifier(name: &str, what: &str) -> Result<(), FerryError> {
    let mut chars = name.chars();
    let valid_start = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    if valid_start
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 128
    {
        Ok(())
    } else {
        Err(FerryError::InvalidContract(format!(
            "{what} name {name:?} must be lower snake_case: a-z, 0-9 and _, starting with a letter or _"
        )))
    }
}

/// The part of `namespace.name` before the dot (the whole text when there is none).
pub fn namespace_of(qualified_name: &str) -> &str {
    qualified_name
        .split_once('.')
        .map_or(qualified_name, |(namespace, _)| namespace)
}

/// Namespaces Ferry keeps for itself (staging, consumer datasets): no contract registers there.
pub fn is_reserved_namespace(namespace: &str) -> bool {
    namespace == "ferry" || namespace.starts_with("ferry_")
}

/// Datasets and views are named `namespace.name`, which maps to a BigQuery dataset and table.
pub fn validate_qualified_name(name: &str, what: &str) -> Result<(), FerryError> {
    match name.split_once('.') {
        Some((namespace, local)) if !local.contains('.') => {
            validate_identifier(namespace, &format!("{what} namespace"))?;
            validate_identifier(local, what)
        }
        _ => Err(FerryError::InvalidContract(format!(
            "{what} name {name:?} must look like namespace.name"
        ))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const CATALOG_YAML: &str =
        include_str!("../../../examples/product_catalog/contract.yaml");

    pub(crate) fn catalog() -> Contract {
        Contract::from_yaml(CATALOG_YAML).expect("example contract is valid")
    }

    #[test]
    fn example_contract_declares_the_catalog_and_both_team_views() {
        let contract = catalog();
        assert_eq!(contract.name, "catalog.product_catalog");
        let names: Vec<_> = contract.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "brand",
                "category_id",
                "comment",
                "currency",
                "description",
                "image",
                "year_release"
            ]
        );
        assert!(contract.view("catalog.with_image").is_some());
        assert!(
            contract
                .view("catalog.samsung_after_2000_without_image")
                .is_some()
        );
    }

    #[test]
    fn unknown_fields_and_bad_names_are_refused() {
        let err = Contract::from_yaml(&CATALOG_YAML.replace("owner:", "ownr:")).unwrap_err();
        assert!(err.to_string().contains("ownr"), "{err}");
        let err = Contract::from_yaml(
            &CATALOG_YAML.replace("name: catalog.product_catalog", "name: Catalog"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("namespace.name"), "{err}");
    }

    #[test]
    fn view_projecting_an_unknown_column_is_refused() {
        let mut contract = catalog();
        contract.views[0].columns.push("price".into());
        let err = contract.validate().unwrap_err();
        assert!(
            err.to_string().contains("\"price\" is not in dataset"),
            "{err}"
        );
    }

    #[test]
    fn personal_columns_need_basis_purpose_and_retention() {
        let mut contract = catalog();
        contract.retention_days = None;
        contract.columns[2].classification = Classification::Personal;
        let err = contract.validate().unwrap_err().to_string();
        for what in ["legal_basis", "purpose", "retention_days", "\"comment\""] {
            assert!(err.contains(what), "{what} missing from: {err}");
        }
        contract.columns[2].legal_basis = Some(LegalBasis::Contract);
        contract.columns[2].purpose = "support".into();
        let err = contract.validate().unwrap_err().to_string();
        assert!(
            !err.contains("legal_basis") && err.contains("retention_days"),
            "{err}"
        );
        contract.retention_days = Some(30);
        contract.validate().unwrap();
        contract.columns[2].retention_days = Some(7);
        assert_eq!(contract.effective_retention_days(), Some(7));
        contract.views.clear();
        contract.columns[2].classification = Classification::Sensitive;
        contract.columns[2].legal_basis = None;
        contract.columns[2].pii_handling = PiiHandling::Drop;
        contract.validate().unwrap();
    }

    #[test]
    fn duplicate_columns_are_refused() {
        let mut contract = catalog();
        let first = contract.columns[0].clone();
        contract.columns.push(first);
        assert!(
            contract
                .validate()
                .unwrap_err()
                .to_string()
                .contains("declared twice")
        );
    }

    #[test]
    fn a_source_name_is_one_header_for_one_column() {
        let refused = |contract: &Contract| contract.validate().unwrap_err().to_string();
        let mut contract = catalog();
        contract.columns[0].source_name = Some("Brand Name".into());
        contract
            .validate()
            .expect("a spaced, capitalised header is fine");

        // Reading `comment` from the header `brand` while `brand` is read from its own name...
        let mut clash = catalog();
        clash.columns[2].source_name = Some("brand".into());
        assert!(refused(&clash).contains("same source name \"brand\""));
        for bad in ["", " Brand", "Brand\tName", &"x".repeat(301)] {
            let mut contract = catalog();
            contract.columns[0].source_name = Some(bad.into());
            assert!(
                refused(&contract).contains("source_name must be"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn csv_options_that_cannot_be_parsed_unambiguously_are_refused() {
        let refused = |edit: fn(&mut CsvOptions)| {
            let mut contract = catalog();
            edit(&mut contract.source.csv);
            contract.validate().unwrap_err().to_string()
        };
        assert!(refused(|o| o.quote = ',').contains("must differ"));
        assert!(refused(|o| o.escape = Some(',')).contains("must differ"));
        assert!(refused(|o| o.delimiter = '\n').contains("line break"));
        assert!(refused(|o| o.delimiter = '§').contains("ASCII"));
        assert!(refused(|o| o.skip_rows = 5000).contains("skip_rows"));
        assert!(refused(|o| o.escape = Some('"')).contains("escape must differ from quote"));
        assert!(refused(|o| o.null_values = vec!["x".repeat(65)]).contains("null_values"));
    }

    #[test]
    fn csv_options_round_trip_through_yaml() {
        let yaml = CATALOG_YAML.replace(
            "    delimiter: \",\"\n",
            "    delimiter: \";\"\n    quote: \"'\"\n    escape: \"\\\\\"\n    \
             null_values: [\"NULL\", \"\\\\N\"]\n    skip_rows: 1\n    encoding: windows-1252\n",
        );
        let contract = Contract::from_yaml(&yaml).expect("valid");
        let csv = &contract.source.csv;
        assert_eq!(
            (csv.delimiter, csv.quote, csv.escape),
            (';', '\'', Some('\\'))
        );
        assert_eq!(csv.null_values, ["NULL", "\\N"]);
        assert_eq!(csv.skip_rows, 1);
        assert_eq!(csv.encoding, TextEncoding::Windows1252);
        assert_eq!(
            Contract::from_yaml(&contract.to_yaml()).expect("valid"),
            contract
        );
    }

    #[test]
    fn options_of_another_format_are_refused_rather_than_ignored() {
        let mut ndjson = catalog();
        ndjson.source.format = DataFormat::Ndjson;
        ndjson.validate().expect("CSV defaults are fine");
        ndjson.source.csv.null_values = vec!["NULL".into()];
        assert!(
            ndjson
                .validate()
                .unwrap_err()
                .to_string()
                .contains("CSV sources only")
        );
        let mut csv = catalog();
        csv.source.unknown_fields = UnknownFields::Ignore;
        assert!(
            csv.validate()
                .unwrap_err()
                .to_string()
                .contains("NDJSON and Parquet sources only")
        );
        let mut parquet = catalog();
        parquet.source.format = DataFormat::Parquet;
        parquet.validate().expect("CSV defaults are fine");
        parquet.columns[0].column_type = ColumnType::Date;
        parquet.columns[0].format = Some("%d/%m/%Y".into());
        assert!(
            parquet
                .validate()
                .unwrap_err()
                .to_string()
                .contains("text sources only")
        );
    }

    #[test]
    fn type_parameters_belong_to_their_types() {
        let mut contract = catalog();
        contract.columns[2].format = Some("%d/%m/%Y".into());
        let err = contract.validate().unwrap_err().to_string();
        assert!(
            err.contains("format applies to date, timestamp and datetime"),
            "{err}"
        );
        contract.columns[2].column_type = ColumnType::Timestamp;
        contract.validate().expect("a timestamp takes a format");
        contract.columns[2].format = Some("%Q".into());
        let err = contract.validate().unwrap_err().to_string();
        assert!(err.contains("not a strftime pattern"), "{err}");
        let mut contract = catalog();
        contract.columns[2].precision = Some(10);
        let err = contract.validate().unwrap_err().to_string();
        assert!(err.contains("numeric columns only"), "{err}");
        contract.columns[2].column_type = ColumnType::Numeric;
        contract.columns[2].scale = Some(2);
        contract.validate().expect("numeric(10, 2)");
        contract.columns[2].scale = Some(11);
        let err = contract.validate().unwrap_err().to_string();
        assert!(err.contains("scale 11"), "{err}");
        let yaml = "name: shop.prices\nowner: team:shop\ncolumns:\n  - {name: price, type: numeric, precision: 12, scale: 2}\n  - {name: sold_at, type: timestamp, format: '%d/%m/%Y %H:%M'}\n  - {name: seen, type: datetime}\n  - {name: blob, type: bytes}\n";
        let parsed = Contract::from_yaml(yaml).expect("parses");
        assert_eq!(
            parsed.columns[0].decimal(),
            Some(DecimalSpec {
                precision: 12,
                scale: 2
            })
        );
        assert_eq!(
            Contract::from_yaml(&parsed.to_yaml()).expect("round trip"),
            parsed
        );
    }
}
