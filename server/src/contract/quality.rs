//! Quality rules: what good data is, beyond its types. Column rules (`not_null`, `unique`,
//! `accepted_values`, `min`/`max`, `pattern`, `max_length`) and dataset rules (a compound
//! `unique`, `row_count`, `row_count_change`), each an `error` that refuses the day or a `warn`
//! that publishes and records. Checked here for what the contract can know; evaluated while the
//! publish streams (`ingest::quality`).

use std::fmt;

use datafusion::arrow::datatypes::i256;
use serde::{Deserialize, Serialize};

use super::values::{self, DecimalSpec};
use super::{Column, ColumnType};

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Severity {
    /// A failed rule refuses the day; nothing visible changes.
    #[default]
    Error,
    /// A failed rule is recorded; the day publishes.
    Warn,
}

fn is_error(severity: &Severity) -> bool {
    *severity == Severity::Error
}

/// A bound as the contract writes it: a number, or text read in the column's type
/// (`"2000-01-01"`, `"12.50"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Bound {
    Integer(i64),
    Number(f64),
    Text(String),
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Integer(v) => write!(f, "{v}"),
            Self::Number(v) => write!(f, "{v}"),
            Self::Text(v) => write!(f, "{v}"),
        }
    }
}

/// A bound in the column's own type, comparable with its values.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub enum TypedBound {
    Int(i64),
    Float(f64),
    /// Unscaled at the column's scale.
    Decimal(i256),
    /// Days since the epoch.
    Date(i32),
    /// Microseconds (timestamps and datetimes).
    Micros(i64),
}

impl Bound {
    /// The bound as a value of `column`'s type; an error says why it is none.
    pub fn typed(&self, column: &Column) -> Result<TypedBound, String> {
        let text = self.to_string();
        let wrong = |e: String| format!("{text:?} is not a {} bound: it {e}", column.column_type);
        Ok(match column.column_type {
            ColumnType::Int64 => match self {
                Self::Integer(v) => TypedBound::Int(*v),
                _ => return Err(wrong("is not an integer".into())),
            },
            ColumnType::Float64 => match self {
                Self::Integer(v) => TypedBound::Float(*v as f64),
                Self::Number(v) if v.is_finite() => TypedBound::Float(*v),
                _ => return Err(wrong("is not a finite number".into())),
            },
            ColumnType::Numeric => TypedBound::Decimal(
                values::parse_decimal(&text, column.decimal().unwrap_or(DecimalSpec::NUMERIC))
                    .map_err(wrong)?,
            ),
            ColumnType::Date => TypedBound::Date(values::parse_date(&text, None).map_err(wrong)?),
            ColumnType::Timestamp => {
                TypedBound::Micros(values::parse_timestamp(&text, None).map_err(wrong)?)
            }
            ColumnType::Datetime => {
                TypedBound::Micros(values::parse_datetime(&text, None).map_err(wrong)?)
            }
            other => {
                return Err(format!(
                    "min and max apply to numbers, dates and times, not {other}"
                ));
            }
        })
    }
}

/// One rule on one column: exactly one check, and its severity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnRule {
    /// No NULL in the day.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_null: bool,
    /// No value twice in the day (NULLs aside).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unique: bool,
    /// Every value is one of these (text columns), compared exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Bound>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Bound>,
    /// A regular expression every value matches (anchor it with `^…$` to match whole values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Characters at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    #[serde(default, skip_serializing_if = "is_error")]
    pub severity: Severity,
}

impl ColumnRule {
    /// What the rule checks, for messages and the ledger: `accepted_values`, `min 1970`.
    pub fn describe(&self) -> String {
        let mut checks = Vec::new();
        if self.not_null {
            checks.push("not_null".to_owned());
        }
        if self.unique {
            checks.push("unique".to_owned());
        }
        if let Some(values) = &self.accepted_values {
            let plural = if values.len() == 1 { "" } else { "s" };
            checks.push(format!("accepted_values ({} value{plural})", values.len()));
        }
        if let Some(min) = &self.min {
            checks.push(format!("min {min}"));
        }
        if let Some(max) = &self.max {
            checks.push(format!("max {max}"));
        }
        if let Some(pattern) = &self.pattern {
            checks.push(format!("pattern {pattern:?}"));
        }
        if let Some(n) = self.max_length {
            checks.push(format!("max_length {n}"));
        }
        checks.join(", ")
    }

    fn checks(&self) -> usize {
        usize::from(self.not_null)
            + usize::from(self.unique)
            + usize::from(self.accepted_values.is_some())
            + usize::from(self.min.is_some())
            + usize::from(self.max.is_some())
            + usize::from(self.pattern.is_some())
            + usize::from(self.max_length.is_some())
    }

    /// Why this rule cannot apply to `column`, if it cannot.
    pub fn check(&self, column: &Column) -> Result<(), String> {
        if self.checks() != 1 {
            return Err(format!(
                "a quality rule names exactly one check, this one names {}",
                self.checks()
            ));
        }
        let text_only = |what: &str| {
            if column.column_type == ColumnType::String {
                Ok(())
            } else {
                Err(format!(
                    "{what} applies to string columns, not {}",
                    column.column_type
                ))
            }
        };
        if let Some(values) = &self.accepted_values {
            text_only("accepted_values")?;
            if values.is_empty() || values.len() > 10_000 {
                return Err("accepted_values lists 1 to 10,000 values".into());
            }
        }
        if let Some(pattern) = &self.pattern {
            text_only("pattern")?;
            compile_pattern(pattern)?;
        }
        if self.max_length.is_some() {
            text_only("max_length")?;
        }
        if let Some(min) = &self.min {
            min.typed(column)?;
        }
        if let Some(max) = &self.max {
            max.typed(column)?;
        }
        Ok(())
    }
}

/// The regular expression of a `pattern` rule. The `regex` crate matches in time linear in the
/// input, so no pattern can stall a publish; its size is bounded too.
pub fn compile_pattern(pattern: &str) -> Result<regex::Regex, String> {
    if pattern.len() > 1000 {
        return Err("pattern is longer than 1,000 characters".into());
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("pattern {pattern:?} is not a regular expression: {e}"))
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowCount {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowCountChange {
    /// The day may have at most this many percent fewer rows than the live previous day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_drop_percent: Option<f64>,
    /// ... and at most this many percent more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_growth_percent: Option<f64>,
}

/// One rule on the whole day: exactly one check, and its severity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetRule {
    /// These columns together are unique in the day (rows with a NULL among them aside).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_count: Option<RowCount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_count_change: Option<RowCountChange>,
    #[serde(default, skip_serializing_if = "is_error")]
    pub severity: Severity,
}

impl DatasetRule {
    pub fn describe(&self) -> String {
        if let Some(columns) = &self.unique {
            return format!("unique ({})", columns.join(", "));
        }
        if let Some(RowCount { min, max }) = &self.row_count {
            let bound = |name: &str, v: &Option<u64>| v.map(|v| format!(" {name} {v}"));
            return format!(
                "row_count{}{}",
                bound("min", min).unwrap_or_default(),
                bound("max", max).unwrap_or_default()
            );
        }
        if let Some(change) = &self.row_count_change {
            let bound = |name: &str, v: &Option<f64>| v.map(|v| format!(" {name} {v}%"));
            return format!(
                "row_count_change{}{}",
                bound("max_drop", &change.max_drop_percent).unwrap_or_default(),
                bound("max_growth", &change.max_growth_percent).unwrap_or_default()
            );
        }
        String::new()
    }

    /// Why this rule cannot be the contract's, if it cannot.
    pub fn check(&self, columns: &[Column]) -> Result<(), String> {
        let checks = usize::from(self.unique.is_some())
            + usize::from(self.row_count.is_some())
            + usize::from(self.row_count_change.is_some());
        if checks != 1 {
            return Err(format!(
                "a dataset quality rule names exactly one check, this one names {checks}"
            ));
        }
        if let Some(names) = &self.unique {
            if names.is_empty() || names.len() > 32 {
                return Err("unique names 1 to 32 columns".into());
            }
            for (i, name) in names.iter().enumerate() {
                if !columns.iter().any(|c| &c.name == name) {
                    return Err(format!("unique names {name:?}, which is not a column"));
                }
                if names[..i].contains(name) {
                    return Err(format!("unique names {name:?} twice"));
                }
            }
        }
        if let Some(RowCount { min, max }) = &self.row_count {
            if min.is_none() && max.is_none() {
                return Err("row_count needs min or max".into());
            }
            if let (Some(min), Some(max)) = (min, max)
                && min > max
            {
                return Err(format!("row_count min {min} is above max {max}"));
            }
        }
        if let Some(change) = &self.row_count_change {
            for value in [change.max_drop_percent, change.max_growth_percent]
                .into_iter()
                .flatten()
            {
                if !(0.0..=1e6).contains(&value) {
                    return Err(format!(
                        "row_count_change percent {value} must be from 0 to 1,000,000"
                    ));
                }
            }
            if change.max_drop_percent.is_none() && change.max_growth_percent.is_none() {
                return Err("row_count_change needs max_drop_percent or max_growth_percent".into());
            }
        }
        Ok(())
    }
}

/// How one rule fared in one publication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleOutcome {
    /// `currency: accepted_values (3 values)`, `dataset: unique (brand, category_id)`.
    pub rule: String,
    /// The column, or empty for a dataset rule.
    pub column: String,
    pub severity: Severity,
    pub passed: bool,
    /// Rows that broke the rule (0 for row counts).
    pub failed_rows: u64,
    /// Where the first failing rows are (lines, or rows for Parquet), up to 10. Never values.
    pub sample_lines: Vec<u64>,
    /// What a row count rule saw: `41 rows, fewer than 50`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl fmt::Display for RuleOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity: &'static str = self.severity.into();
        write!(f, "{} [{severity}]: ", self.rule)?;
        if self.passed {
            return f.write_str("passed");
        }
        if self.failed_rows > 0 {
            write!(f, "{} row(s) failed", self.failed_rows)?;
            if !self.sample_lines.is_empty() {
                let lines: Vec<String> = self.sample_lines.iter().map(u64::to_string).collect();
                write!(f, " (lines {})", lines.join(", "))?;
            }
        }
        if !self.detail.is_empty() {
            if self.failed_rows > 0 {
                f.write_str("; ")?;
            }
            f.write_str(&self.detail)?;
        }
        Ok(())
    }
}

/// The outcome of `row_count` and `row_count_change` rules for a day of `rows`, the live
/// previous day holding `previous` (none: the rule passes, there is nothing to compare).
pub fn row_count_outcome(
    rule: &DatasetRule,
    rows: u64,
    previous: Option<u64>,
) -> Option<RuleOutcome> {
    let outcome = |passed: bool, detail: String| RuleOutcome {
        rule: format!("dataset: {}", rule.describe()),
        column: String::new(),
        severity: rule.severity,
        passed,
        failed_rows: 0,
        sample_lines: Vec::new(),
        detail,
    };
    if let Some(RowCount { min, max }) = &rule.row_count {
        let low = min.is_some_and(|min| rows < min);
        let high = max.is_some_and(|max| rows > max);
        let detail = if low {
            format!("{rows} rows, fewer than {}", min.unwrap_or_default())
        } else if high {
            format!("{rows} rows, more than {}", max.unwrap_or_default())
        } else {
            format!("{rows} rows")
        };
        return Some(outcome(!low && !high, detail));
    }
    if let Some(change) = &rule.row_count_change {
        let Some(previous) = previous else {
            return Some(outcome(
                true,
                format!("{rows} rows; no previous day to compare"),
            ));
        };
        let percent = if previous == 0 {
            if rows == 0 { 0.0 } else { f64::INFINITY }
        } else {
            (rows as f64 - previous as f64) * 100.0 / previous as f64
        };
        let dropped = change.max_drop_percent.is_some_and(|max| -percent > max);
        let grew = change.max_growth_percent.is_some_and(|max| percent > max);
        let detail = format!("{rows} rows against {previous} on the previous day ({percent:+.1}%)");
        return Some(outcome(!dropped && !grew, detail));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Contract;

    #[test]
    fn the_issue_example_parses_and_round_trips() {
        let yaml = r#"
name: catalog.rules
owner: team:catalog
columns:
  - name: currency
    type: string
    quality:
      - accepted_values: [EUR, USD, GBP]
      - pattern: "^[A-Z]{3}$"
        severity: warn
  - name: year_release
    type: int64
    quality: [{min: 1970}, {max: 2027}]
  - {name: brand, type: string}
  - {name: category_id, type: int64}
quality:
  - unique: [brand, category_id, year_release]
  - row_count: {min: 50}
  - row_count_change: {max_drop_percent: 50}
"#;
        let contract = Contract::from_yaml(yaml).expect("valid");
        assert_eq!(contract.columns[0].quality.len(), 2);
        assert_eq!(contract.columns[0].quality[1].severity, Severity::Warn);
        assert_eq!(contract.quality.len(), 3);
        assert_eq!(
            Contract::from_yaml(&contract.to_yaml()).expect("round trip"),
            contract
        );
    }

    #[test]
    fn rules_that_cannot_apply_are_refused() {
        let base = "name: catalog.rules\nowner: team:catalog\ncolumns:\n  - {name: year, type: int64, quality: [RULE]}\n  - {name: code, type: string}\n";
        for (rule, expected) in [
            ("{min: 1, max: 2}", "exactly one check"),
            ("{}", "exactly one check"),
            ("{pattern: \"[\"}", "string columns"),
            ("{accepted_values: [a]}", "string columns"),
            ("{min: \"soon\"}", "not an integer"),
            ("{nonsense: 1}", "unknown field"),
        ] {
            let err = Contract::from_yaml(&base.replace("RULE", rule))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{rule}: {err}");
        }
        let text = base.replace("RULE", "{}").replace(
            "{name: code, type: string}",
            "{name: code, type: string, quality: [{pattern: \"[\"}]}",
        );
        let text = text.replace(", quality: [{}]", "");
        let err = Contract::from_yaml(&text).unwrap_err().to_string();
        assert!(err.contains("not a regular expression"), "{err}");
        let dataset = "name: catalog.rules\nowner: team:catalog\ncolumns:\n  - {name: year, type: int64}\nquality:\n  - RULE\n";
        for (rule, expected) in [
            ("unique: [year, nope]", "not a column"),
            ("row_count: {min: 5, max: 1}", "above max"),
            ("row_count_change: {}", "needs max_drop_percent"),
        ] {
            let err = Contract::from_yaml(&dataset.replace("RULE", rule))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{rule}: {err}");
        }
    }

    #[test]
    fn row_counts_compare_with_the_previous_day() {
        let change = DatasetRule {
            row_count_change: Some(RowCountChange {
                max_drop_percent: Some(50.0),
                max_growth_percent: None,
            }),
            ..DatasetRule::default()
        };
        assert!(row_count_outcome(&change, 60, Some(100)).unwrap().passed);
        let dropped = row_count_outcome(&change, 40, Some(100)).unwrap();
        assert!(!dropped.passed);
        assert_eq!(
            dropped.detail,
            "40 rows against 100 on the previous day (-60.0%)"
        );
        assert!(row_count_outcome(&change, 1, None).unwrap().passed);
        let count = DatasetRule {
            row_count: Some(RowCount {
                min: Some(50),
                max: None,
            }),
            severity: Severity::Warn,
            ..DatasetRule::default()
        };
        let few = row_count_outcome(&count, 41, None).unwrap();
        assert_eq!(
            few.to_string(),
            "dataset: row_count min 50 [warn]: 41 rows, fewer than 50"
        );
    }
}
