//! Quality rules and their outcomes between `ferry.v1` messages and domain types.

use ferry_proto::v1 as pb;
use pb::quality_rule::Check;

use crate::contract::quality::{Bound, RowCount, RowCountChange};
use crate::contract::{ColumnRule, DatasetRule, RuleOutcome, Severity};
use crate::error::FerryError;

fn severity_to_pb(severity: Severity) -> i32 {
    match severity {
        Severity::Error => pb::Severity::Error,
        Severity::Warn => pb::Severity::Warn,
    }
    .into()
}

fn severity_from_pb(severity: i32) -> Result<Severity, FerryError> {
    match pb::Severity::try_from(severity) {
        Ok(pb::Severity::Unspecified | pb::Severity::Error) => Ok(Severity::Error),
        Ok(pb::Severity::Warn) => Ok(Severity::Warn),
        Err(_) => Err(FerryError::InvalidContract(format!(
            "quality rule: unknown severity {severity}"
        ))),
    }
}

/// A bound written as text: an integer, a number, or text in the column's type.
fn bound_from_pb(text: String) -> Bound {
    if let Ok(integer) = text.parse::<i64>() {
        Bound::Integer(integer)
    } else if let Ok(number) = text.parse::<f64>()
        && number.is_finite()
        && !text.contains(['-', ':'])
    {
        Bound::Number(number)
    } else {
        Bound::Text(text)
    }
}

pub fn column_rule_to_pb(rule: &ColumnRule) -> pb::QualityRule {
    let check = if rule.not_null {
        Check::NotNull(true)
    } else if rule.unique {
        Check::Unique(true)
    } else if let Some(values) = &rule.accepted_values {
        Check::AcceptedValues(pb::AcceptedValues {
            values: values.clone(),
        })
    } else if let Some(min) = &rule.min {
        Check::Min(min.to_string())
    } else if let Some(max) = &rule.max {
        Check::Max(max.to_string())
    } else if let Some(pattern) = &rule.pattern {
        Check::Pattern(pattern.clone())
    } else {
        Check::MaxLength(rule.max_length.unwrap_or_default())
    };
    pb::QualityRule {
        check: Some(check),
        severity: severity_to_pb(rule.severity),
    }
}

pub fn dataset_rule_to_pb(rule: &DatasetRule) -> pb::QualityRule {
    let check = if let Some(columns) = &rule.unique {
        Check::UniqueColumns(pb::UniqueColumns {
            columns: columns.clone(),
        })
    } else if let Some(count) = &rule.row_count {
        Check::RowCount(pb::RowCountRule {
            min: count.min,
            max: count.max,
        })
    } else {
        let change = rule.row_count_change.clone().unwrap_or_default();
        Check::RowCountChange(pb::RowCountChangeRule {
            max_drop_percent: change.max_drop_percent,
            max_growth_percent: change.max_growth_percent,
        })
    };
    pb::QualityRule {
        check: Some(check),
        severity: severity_to_pb(rule.severity),
    }
}

pub fn column_rule_from_pb(rule: pb::QualityRule) -> Result<ColumnRule, FerryError> {
    let mut out = ColumnRule {
        severity: severity_from_pb(rule.severity)?,
        ..ColumnRule::default()
    };
    match rule.check {
        Some(Check::NotNull(on)) => out.not_null = on,
        Some(Check::Unique(on)) => out.unique = on,
        Some(Check::AcceptedValues(v)) => out.accepted_values = Some(v.values),
        Some(Check::Min(text)) => out.min = Some(bound_from_pb(text)),
        Some(Check::Max(text)) => out.max = Some(bound_from_pb(text)),
        Some(Check::Pattern(pattern)) => out.pattern = Some(pattern),
        Some(Check::MaxLength(n)) => out.max_length = Some(n),
        Some(Check::UniqueColumns(_) | Check::RowCount(_) | Check::RowCountChange(_)) => {
            return Err(FerryError::InvalidContract(
                "unique_columns, row_count and row_count_change are dataset rules, not column \
                 rules"
                    .into(),
            ));
        }
        None => {}
    }
    Ok(out)
}

pub fn dataset_rule_from_pb(rule: pb::QualityRule) -> Result<DatasetRule, FerryError> {
    let mut out = DatasetRule {
        severity: severity_from_pb(rule.severity)?,
        ..DatasetRule::default()
    };
    match rule.check {
        Some(Check::UniqueColumns(u)) => out.unique = Some(u.columns),
        Some(Check::RowCount(c)) => {
            out.row_count = Some(RowCount {
                min: c.min,
                max: c.max,
            })
        }
        Some(Check::RowCountChange(c)) => {
            out.row_count_change = Some(RowCountChange {
                max_drop_percent: c.max_drop_percent,
                max_growth_percent: c.max_growth_percent,
            })
        }
        Some(_) => {
            return Err(FerryError::InvalidContract(
                "a dataset quality rule is unique_columns, row_count or row_count_change".into(),
            ));
        }
        None => {}
    }
    Ok(out)
}

pub fn outcome_to_pb(outcome: &RuleOutcome) -> pb::RuleOutcome {
    pb::RuleOutcome {
        rule: outcome.rule.clone(),
        column: outcome.column.clone(),
        severity: severity_to_pb(outcome.severity),
        passed: outcome.passed,
        failed_rows: outcome.failed_rows,
        sample_lines: outcome.sample_lines.clone(),
        detail: outcome.detail.clone(),
    }
}
