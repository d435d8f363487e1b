//! The contract's quality rules, evaluated on the validated batches as they stream to the
//! warehouse: no second read of the source or of the partition. Each rule counts its failing
//! rows and keeps where the first ten are (lines, or rows for Parquet), never their values.
//! `unique` keeps a 128-bit digest per distinct key, so 1.2 M keys take about 40 MB, and it stops
//! with a clear error past `limits.max_unique_keys` rather than growing without bound.

use std::cmp::Ordering::{Equal, Greater, Less};
use std::collections::HashSet;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Decimal256Type, Float64Type, Int64Type,
    TimestampMicrosecondType, i256,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::hash_utils::{RandomState, create_hashes_with_hasher};

use crate::contract::quality::{
    ColumnRule, DatasetRule, RuleOutcome, Severity, TypedBound, compile_pattern, row_count_outcome,
};
use crate::contract::{Contract, PiiHandling};
use crate::error::FerryError;

/// Sample locations kept per rule.
const SAMPLES: usize = 10;

/// Distinct keys a `unique` rule holds by default before it gives up.
pub const DEFAULT_MAX_UNIQUE_KEYS: usize = 5_000_000;

enum Check {
    NotNull,
    Unique {
        columns: Vec<usize>,
        seen: HashSet<u128>,
        hashers: (RandomState, RandomState),
    },
    Accepted(HashSet<String>),
    Min(TypedBound),
    Max(TypedBound),
    Pattern(regex::Regex),
    MaxLength(u64),
}

struct Rule {
    name: String,
    column: String,
    /// The stored column the rule reads (the first key column for `unique`).
    index: usize,
    severity: Severity,
    check: Check,
    failed: u64,
    samples: Vec<u64>,
}

/// The rules of one publish, and what they have seen so far.
pub struct QualityCheck {
    rules: Vec<Rule>,
    max_unique_keys: usize,
}

impl QualityCheck {
    /// The contract's row rules, compiled against its stored schema; `None` when it has none.
    pub fn new(contract: &Contract, max_unique_keys: usize) -> Result<Option<Self>, FerryError> {
        let stored: Vec<&str> = contract.stored_columns().map(|c| c.name.as_str()).collect();
        let position = |name: &str| {
            stored.iter().position(|n| *n == name).ok_or_else(|| {
                FerryError::InvalidContract(format!(
                    "column {name:?} is dropped at publish; its quality rules cannot be checked"
                ))
            })
        };
        // Two independent 64-bit hashes make one 128-bit digest; the seeds change with every
        // publish, so no file can be crafted to collide.
        let hashers = || {
            (
                RandomState::with_seed(rand::random()),
                RandomState::with_seed(rand::random()),
            )
        };
        let mut rules = Vec::new();
        for column in &contract.columns {
            for rule in &column.quality {
                let index = position(&column.name)?;
                let check = column_check(rule, column, hashers, index)?;
                rules.push(Rule {
                    name: format!("{}: {}", column.name, rule.describe()),
                    column: column.name.clone(),
                    index,
                    severity: rule.severity,
                    check,
                    failed: 0,
                    samples: Vec::new(),
                });
            }
        }
        for rule in &contract.quality {
            let Some(names) = &rule.unique else { continue };
            let columns = names
                .iter()
                .map(|name| position(name))
                .collect::<Result<Vec<_>, _>>()?;
            rules.push(Rule {
                name: format!("dataset: {}", rule.describe()),
                column: String::new(),
                index: columns[0],
                severity: rule.severity,
                check: Check::Unique {
                    columns,
                    seen: HashSet::new(),
                    hashers: hashers(),
                },
                failed: 0,
                samples: Vec::new(),
            });
        }
        Ok((!rules.is_empty()).then_some(Self {
            rules,
            max_unique_keys,
        }))
    }

    /// Checks a batch of valid rows; `lines[i]` is where row `i` is in the source.
    pub fn observe(&mut self, batch: &RecordBatch, lines: &[u64]) -> Result<(), FerryError> {
        let max_unique_keys = self.max_unique_keys;
        // Every unique rule draws on one budget, so many rules cannot multiply the memory.
        let mut held: usize = self
            .rules
            .iter()
            .map(|r| match &r.check {
                Check::Unique { seen, .. } => seen.len(),
                _ => 0,
            })
            .sum();
        for rule in &mut self.rules {
            let array = batch.column(rule.index);
            let mut failed = |row: usize| {
                rule.failed += 1;
                if rule.samples.len() < SAMPLES {
                    rule.samples
                        .push(lines.get(row).copied().unwrap_or_default());
                }
            };
            match &mut rule.check {
                Check::NotNull => (0..batch.num_rows())
                    .filter(|&row| array.is_null(row))
                    .for_each(&mut failed),
                Check::Accepted(values) => {
                    let text = array.as_string::<i32>();
                    (0..text.len())
                        .filter(|&row| text.is_valid(row) && !values.contains(text.value(row)))
                        .for_each(&mut failed);
                }
                Check::Pattern(regex) => {
                    let text = array.as_string::<i32>();
                    (0..text.len())
                        .filter(|&row| text.is_valid(row) && !regex.is_match(text.value(row)))
                        .for_each(&mut failed);
                }
                Check::MaxLength(max) => {
                    let text = array.as_string::<i32>();
                    let max = usize::try_from(*max).unwrap_or(usize::MAX);
                    (0..text.len())
                        .filter(|&row| {
                            // Bytes bound characters from above: most values need no count.
                            text.is_valid(row)
                                && text.value(row).len() > max
                                && text.value(row).chars().count() > max
                        })
                        .for_each(&mut failed);
                }
                // Written as "not within", so a NaN (which compares with nothing) fails.
                Check::Min(bound) => {
                    let bound = *bound;
                    for_each_value(array, |row, value| {
                        if !matches!(value.partial_cmp(&bound), Some(Greater | Equal)) {
                            failed(row);
                        }
                    });
                }
                Check::Max(bound) => {
                    let bound = *bound;
                    for_each_value(array, |row, value| {
                        if !matches!(value.partial_cmp(&bound), Some(Less | Equal)) {
                            failed(row);
                        }
                    });
                }
                Check::Unique {
                    columns,
                    seen,
                    hashers,
                } => {
                    let keys: Vec<ArrayRef> =
                        columns.iter().map(|&i| batch.column(i).clone()).collect();
                    let rows = batch.num_rows();
                    let (mut low, mut high) = (vec![0u64; rows], vec![0u64; rows]);
                    let hashed = create_hashes_with_hasher(&keys, &hashers.0, &mut low)
                        .and_then(|_| create_hashes_with_hasher(&keys, &hashers.1, &mut high));
                    hashed.map_err(|e| FerryError::Internal(format!("hashing keys: {e}")))?;
                    for row in 0..rows {
                        if keys.iter().any(|k| k.is_null(row)) {
                            continue;
                        }
                        let key = (u128::from(high[row]) << 64) | u128::from(low[row]);
                        if !seen.insert(key) {
                            failed(row);
                        } else {
                            held += 1;
                            if held > max_unique_keys {
                                return Err(FerryError::ResourceExhausted(format!(
                                    "quality rule {}: the day's unique rules hold more than \
                                     {max_unique_keys} distinct keys, the limit \
                                     (limits.max_unique_keys)",
                                    rule.name
                                )));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Every row rule's outcome.
    pub fn outcomes(self) -> Vec<RuleOutcome> {
        self.rules
            .into_iter()
            .map(|rule| RuleOutcome {
                rule: rule.name,
                column: rule.column,
                severity: rule.severity,
                passed: rule.failed == 0,
                failed_rows: rule.failed,
                sample_lines: rule.samples,
                detail: String::new(),
            })
            .collect()
    }
}

/// Outcomes of the contract's row count rules for a day of `rows` (the live previous day held
/// `previous`).
pub fn row_count_outcomes(
    contract: &Contract,
    rows: u64,
    previous: Option<u64>,
) -> Vec<RuleOutcome> {
    contract
        .quality
        .iter()
        .filter_map(|rule: &DatasetRule| row_count_outcome(rule, rows, previous))
        .collect()
}

fn column_check(
    rule: &ColumnRule,
    column: &crate::contract::Column,
    hashers: impl Fn() -> (RandomState, RandomState),
    index: usize,
) -> Result<Check, FerryError> {
    let invalid = |e: String| FerryError::InvalidContract(format!("column {:?}: {e}", column.name));
    let hides_values = column.pii_handling == PiiHandling::Pseudonymize;
    if hides_values
        && (rule.accepted_values.is_some() || rule.pattern.is_some() || rule.max_length.is_some())
    {
        return Err(invalid(
            "a pseudonymized column stores pseudonyms; only not_null and unique apply to it".into(),
        ));
    }
    Ok(if rule.not_null {
        Check::NotNull
    } else if rule.unique {
        Check::Unique {
            columns: vec![index],
            seen: HashSet::new(),
            hashers: hashers(),
        }
    } else if let Some(values) = &rule.accepted_values {
        Check::Accepted(values.iter().cloned().collect())
    } else if let Some(pattern) = &rule.pattern {
        Check::Pattern(compile_pattern(pattern).map_err(invalid)?)
    } else if let Some(max) = rule.max_length {
        Check::MaxLength(max)
    } else if let Some(min) = &rule.min {
        Check::Min(min.typed(column).map_err(invalid)?)
    } else if let Some(max) = &rule.max {
        Check::Max(max.typed(column).map_err(invalid)?)
    } else {
        return Err(invalid("a quality rule names no check".into()));
    })
}

/// Calls `f` with each non-null value of a number, date or time column as a `TypedBound`.
fn for_each_value(array: &ArrayRef, mut f: impl FnMut(usize, TypedBound)) {
    let valid = |row: usize| array.is_valid(row);
    match array.data_type() {
        DataType::Int64 => {
            let values = array.as_primitive::<Int64Type>();
            (0..values.len())
                .filter(|&r| valid(r))
                .for_each(|r| f(r, TypedBound::Int(values.value(r))));
        }
        DataType::Float64 => {
            let values = array.as_primitive::<Float64Type>();
            (0..values.len())
                .filter(|&r| valid(r))
                .for_each(|r| f(r, TypedBound::Float(values.value(r))));
        }
        DataType::Decimal128(..) => {
            let values = array.as_primitive::<Decimal128Type>();
            (0..values.len())
                .filter(|&r| valid(r))
                .for_each(|r| f(r, TypedBound::Decimal(i256::from_i128(values.value(r)))));
        }
        DataType::Decimal256(..) => {
            let values = array.as_primitive::<Decimal256Type>();
            (0..values.len())
                .filter(|&r| valid(r))
                .for_each(|r| f(r, TypedBound::Decimal(values.value(r))));
        }
        DataType::Date32 => {
            let values = array.as_primitive::<Date32Type>();
            (0..values.len())
                .filter(|&r| valid(r))
                .for_each(|r| f(r, TypedBound::Date(values.value(r))));
        }
        DataType::Timestamp(..) => {
            let values = array.as_primitive::<TimestampMicrosecondType>();
            (0..values.len())
                .filter(|&r| valid(r))
                .for_each(|r| f(r, TypedBound::Micros(values.value(r))));
        }
        // `Bound::typed` admits no other column type.
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ingest::validate::{RowValidator, ValidationProgress};

    const RULES: &str = r#"
name: catalog.rules
owner: team:catalog
columns:
  - name: brand
    type: string
    quality: [{not_null: true}, {max_length: 5, severity: warn}]
  - name: currency
    type: string
    quality:
      - accepted_values: [EUR, USD]
      - pattern: "^[A-Z]{3}$"
        severity: warn
  - name: year
    type: int64
    quality: [{min: 1970}, {max: 2027}]
  - name: price
    type: numeric
    scale: 2
    quality: [{min: "0.01"}]
  - name: sku
    type: string
    quality: [{unique: true}]
quality:
  - unique: [brand, year]
"#;

    fn outcomes(input: &str, max_unique_keys: usize) -> Result<Vec<RuleOutcome>, FerryError> {
        let contract = Contract::from_yaml(RULES).expect("valid");
        let validator = RowValidator::new(
            &contract,
            chrono::NaiveDate::from_ymd_opt(2021, 4, 3).expect("date"),
            Arc::new(ValidationProgress::default()),
            None,
        )
        .with_quality(max_unique_keys)?;
        let summary = validator.run(input.as_bytes(), |_| Ok(()), |_| Ok(()))?;
        Ok(summary.quality)
    }

    #[test]
    fn each_rule_counts_its_failing_rows_and_where_they_are() {
        let input = "brand,currency,year,price,sku\n\
            HP,EUR,1999,1.00,a\n\
            ,usd,1960,0.00,b\n\
            Samsung,GBP,2030,5.00,a\n\
            HP,EUR,1999,2.50,\n";
        let seen: Vec<(String, bool, u64, Vec<u64>)> = outcomes(input, 100)
            .expect("runs")
            .into_iter()
            .map(|o| (o.rule, o.passed, o.failed_rows, o.sample_lines))
            .collect();
        let expect = |rule: &str, failed: u64, lines: &[u64]| {
            (rule.to_owned(), failed == 0, failed, lines.to_vec())
        };
        assert_eq!(
            seen,
            [
                expect("brand: not_null", 1, &[3]),
                expect("brand: max_length 5", 1, &[4]),
                expect("currency: accepted_values (2 values)", 2, &[3, 4]),
                expect("currency: pattern \"^[A-Z]{3}$\"", 1, &[3]),
                expect("year: min 1970", 1, &[3]),
                expect("year: max 2027", 1, &[4]),
                expect("price: min 0.01", 1, &[3]),
                expect("sku: unique", 1, &[4]),
                expect("dataset: unique (brand, year)", 1, &[5]),
            ]
        );
    }

    #[test]
    fn unique_past_its_key_limit_fails_clearly() {
        let mut input = String::from("brand,currency,year,price,sku\n");
        for i in 0..50 {
            input.push_str(&format!("HP,EUR,{},1.00,k{i}\n", 1970 + i));
        }
        let err = outcomes(&input, 10).unwrap_err().to_string();
        assert!(err.contains("more than 10 distinct keys"), "{err}");
        assert!(err.contains("limits.max_unique_keys"), "{err}");
    }
}
