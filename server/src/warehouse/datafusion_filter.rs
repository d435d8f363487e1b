//! A validated view filter compiled to a DataFusion expression, node by node from the AST that
//! `ViewFilter::parse` checked. Nothing is rendered to text and parsed again, so no quoting or
//! escaping rule of a second parser can change what a literal means.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, col, lit, not};
use datafusion::sql::sqlparser::ast::{self, BinaryOperator, UnaryOperator, Value};

use crate::contract::{TypedLiteral, ViewFilter};
use crate::error::FerryError;

/// The filter as a DataFusion expression, or `None` when it keeps every row.
pub fn datafusion_filter(filter: &ViewFilter) -> Result<Option<Expr>, FerryError> {
    filter.ast().map(compile).transpose()
}

fn unsupported(what: impl std::fmt::Display) -> FerryError {
    // `ViewFilter::parse` admits none of these; reaching here is a bug, not bad input.
    FerryError::Internal(format!("a validated filter holds {what}"))
}

fn compile(expr: &ast::Expr) -> Result<Expr, FerryError> {
    Ok(match expr {
        // Column names are the contract's, taken as they are: no parsing, no case folding.
        ast::Expr::Identifier(ident) => col(datafusion::common::Column::new_unqualified(
            ident.value.clone(),
        )),
        ast::Expr::Value(value) => literal(&value.value, false)?,
        ast::Expr::TypedString(typed) => typed_literal(typed)?,
        ast::Expr::Nested(inner) => compile(inner)?,
        ast::Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => not(compile(expr)?),
        ast::Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            ast::Expr::Value(value) => literal(&value.value, true)?,
            other => return Err(unsupported(format!("a minus sign on {other}"))),
        },
        ast::Expr::BinaryOp { left, op, right } => {
            let (left, right) = (compile(left)?, compile(right)?);
            match op {
                BinaryOperator::And => left.and(right),
                BinaryOperator::Or => left.or(right),
                BinaryOperator::Eq => left.eq(right),
                BinaryOperator::NotEq => left.not_eq(right),
                BinaryOperator::Lt => left.lt(right),
                BinaryOperator::LtEq => left.lt_eq(right),
                BinaryOperator::Gt => left.gt(right),
                BinaryOperator::GtEq => left.gt_eq(right),
                other => return Err(unsupported(format!("the operator {other}"))),
            }
        }
        ast::Expr::IsNull(inner) => compile(inner)?.is_null(),
        ast::Expr::IsNotNull(inner) => compile(inner)?.is_not_null(),
        ast::Expr::InList {
            expr,
            list,
            negated,
        } => compile(expr)?.in_list(
            list.iter().map(compile).collect::<Result<_, _>>()?,
            *negated,
        ),
        ast::Expr::Like {
            negated,
            expr,
            pattern,
            ..
        } => like(expr, pattern, *negated, false)?,
        ast::Expr::ILike {
            negated,
            expr,
            pattern,
            ..
        } => like(expr, pattern, *negated, true)?,
        other => return Err(unsupported(format!("the expression {other}"))),
    })
}

fn like(
    subject: &ast::Expr,
    pattern: &ast::Expr,
    negated: bool,
    case_insensitive: bool,
) -> Result<Expr, FerryError> {
    let (subject, pattern) = (compile(subject)?, compile(pattern)?);
    Ok(match (negated, case_insensitive) {
        (false, false) => subject.like(pattern),
        (true, false) => subject.not_like(pattern),
        (false, true) => subject.ilike(pattern),
        (true, true) => subject.not_ilike(pattern),
    })
}

/// `TIMESTAMP '...'` and the like as the Arrow value a column of the type holds.
fn typed_literal(typed: &ast::TypedString) -> Result<Expr, FerryError> {
    let value = TypedLiteral::parse(typed).map_err(|e| unsupported(e.to_string()))?;
    Ok(lit(match value {
        TypedLiteral::Date(days) => ScalarValue::Date32(Some(days)),
        TypedLiteral::Timestamp(micros) => {
            ScalarValue::TimestampMicrosecond(Some(micros), Some("UTC".into()))
        }
        TypedLiteral::Datetime(micros) => ScalarValue::TimestampMicrosecond(Some(micros), None),
        TypedLiteral::Numeric { unscaled, scale } => match unscaled.to_i128() {
            Some(small) if unscaled.to_string().trim_start_matches('-').len() <= 38 => {
                // Scale is at most 38, within i8.
                ScalarValue::Decimal128(Some(small), 38, scale as i8)
            }
            _ => ScalarValue::Decimal256(Some(unscaled), 76, scale as i8),
        },
    }))
}

/// A literal as the typed value it denotes. Integers that fit stay exact (`i64`); other numbers
/// are `f64`, as the contract's float columns are.
fn literal(value: &Value, negative: bool) -> Result<Expr, FerryError> {
    Ok(match value {
        Value::SingleQuotedString(text) if !negative => lit(text.clone()),
        Value::Boolean(b) if !negative => lit(*b),
        Value::Null if !negative => lit(ScalarValue::Null),
        Value::Number(number, _) => {
            let text = number.to_string();
            let signed = if negative { format!("-{text}") } else { text };
            if let Ok(integer) = signed.parse::<i64>() {
                lit(integer)
            } else {
                let float = signed
                    .parse::<f64>()
                    .map_err(|_| unsupported(format!("the number {signed}")))?;
                lit(float)
            }
        }
        other => return Err(unsupported(format!("the literal {other}"))),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, BooleanArray, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::common::DFSchema;
    use datafusion::prelude::SessionContext;
    use datafusion::sql::sqlparser::dialect::BigQueryDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    use proptest::prelude::*;

    use super::*;
    use crate::contract::tests::catalog;

    /// The filter `brand = <s as a SQL literal>`, written as a user would write it.
    fn equals(s: &str) -> ViewFilter {
        let text = format!("brand = '{}'", s.replace('\'', "''"));
        ViewFilter::parse(&text, &catalog()).expect("a string comparison is a valid filter")
    }

    /// Which of `values` the compiled filter keeps.
    fn kept(filter: &ViewFilter, values: &[String]) -> Vec<bool> {
        let schema = Arc::new(Schema::new(vec![Field::new("brand", DataType::Utf8, true)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(values.to_vec()))],
        )
        .expect("batch");
        let expr = datafusion_filter(filter)
            .expect("compiles")
            .expect("a filter");
        let df_schema = DFSchema::try_from(schema.as_ref().clone()).expect("schema");
        let physical = SessionContext::new()
            .create_physical_expr(expr, &df_schema)
            .expect("physical");
        let result = physical
            .evaluate(&batch)
            .expect("evaluates")
            .into_array(values.len())
            .expect("array");
        let result = result
            .as_any()
            .downcast_ref::<BooleanArray>()
            .expect("booleans");
        (0..values.len())
            .map(|i| result.is_valid(i) && result.value(i))
            .collect()
    }

    /// The string literal of `(`brand`) = ('...')`: sqlparser's BigQuery grammar must read it as
    /// one literal (no quote ends it early), and decoding its escapes as GoogleSQL defines them
    /// (cloud.google.com/bigquery/docs/reference/standard-sql/lexical#escape_sequences) must
    /// give back the value.
    fn googlesql_literal(sql: &str) -> String {
        let expr = Parser::new(&BigQueryDialect {})
            .try_with_sql(sql)
            .expect("tokenizes")
            .parse_expr()
            .expect("parses");
        let ast::Expr::BinaryOp { right, .. } = expr else {
            panic!("not a comparison: {sql}");
        };
        let ast::Expr::Nested(inner) = *right else {
            panic!("not parenthesized: {sql}");
        };
        assert!(
            matches!(&*inner, ast::Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_))),
            "not one string literal: {sql}"
        );
        let quoted = sql
            .strip_prefix("(`brand`) = ('")
            .and_then(|rest| rest.strip_suffix("')"))
            .expect("the rendering's shape");
        googlesql_unescape(quoted)
    }

    fn googlesql_unescape(text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            assert_ne!(c, '\'', "an unescaped quote in {text:?}");
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next().expect("an escape") {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let code = u32::from_str_radix(&hex, 16).expect("four hex digits");
                    out.push(char::from_u32(code).expect("a code point"));
                }
                quoted @ ('\\' | '\'' | '"' | '`') => out.push(quoted),
                other => panic!("not a GoogleSQL escape: \\{other}"),
            }
        }
        out
    }

    fn check_exact_match(s: &str) {
        let filter = equals(s);
        let values = vec![
            s.to_owned(),
            format!("{s}x"),
            format!("x{s}"),
            String::new(),
            "Samsung".to_owned(),
            s.to_owned(),
        ];
        let expected: Vec<bool> = values.iter().map(|v| v == s).collect();
        assert_eq!(kept(&filter, &values), expected, "{s:?}");
        let bigquery = filter.to_bigquery_sql().expect("renders");
        assert_eq!(googlesql_literal(&bigquery), s, "{bigquery}");
    }

    #[test]
    fn hostile_literals_match_exactly_themselves() {
        for s in [
            r"\",
            r"\'",
            r"x\' OR 1=1 --",
            "'",
            "''",
            "a\nb",
            "a\rb\tc",
            "nul\0byte",
            "\u{7f}\u{1b}[0m",
            "é ü 日本 🦀",
            "`brand`",
            "\"quoted\"",
            "%_",
            "",
        ] {
            check_exact_match(s);
        }
    }

    proptest! {
        #[test]
        fn any_string_literal_matches_exactly_itself(s in any::<String>()) {
            check_exact_match(&s);
        }
    }

    #[test]
    fn like_in_and_null_tests_keep_their_meaning() {
        let values: Vec<String> = ["Samsung", "samsung tv", "HP", "", "Dell"]
            .map(String::from)
            .to_vec();
        let keeps = |text: &str| kept(&ViewFilter::parse(text, &catalog()).expect(text), &values);
        assert_eq!(
            keeps("brand LIKE 'Sam%'"),
            [true, false, false, false, false]
        );
        assert_eq!(
            keeps("brand ILIKE 'sam%'"),
            [true, true, false, false, false]
        );
        assert_eq!(
            keeps("brand NOT LIKE '%a%'"),
            [false, false, true, true, true]
        );
        assert_eq!(
            keeps("brand NOT ILIKE 'S%'"),
            [false, false, true, true, true]
        );
        assert_eq!(
            keeps("brand IN ('HP', 'Dell')"),
            [false, false, true, false, true]
        );
        assert_eq!(
            keeps("NOT (brand = '' OR brand IS NULL)"),
            [true, true, true, false, true]
        );
    }

    #[test]
    fn numbers_keep_their_type_and_sign() {
        let contract = catalog();
        let filter = ViewFilter::parse(
            "year_release > -1 AND category_id = 9007199254740993",
            &contract,
        )
        .expect("valid");
        let expr = datafusion_filter(&filter)
            .expect("compiles")
            .expect("a filter");
        let text = expr.to_string();
        assert!(text.contains("Int64(-1)"), "{text}");
        assert!(text.contains("Int64(9007199254740993)"), "{text}");
    }

    #[test]
    fn typed_literals_compile_to_values_of_the_column_types() {
        use datafusion::arrow::array::{Decimal128Array, TimestampMicrosecondArray};

        use crate::contract::Contract;
        let contract = Contract::from_yaml(
            "name: shop.orders\nowner: team:shop\ncolumns:\n  \
             - {name: price, type: numeric, precision: 12, scale: 2}\n  \
             - {name: sold_at, type: timestamp}\n",
        )
        .expect("valid");
        let filter = ViewFilter::parse(
            "sold_at >= TIMESTAMP '2021-04-03T12:00:00+02:00' AND price > NUMERIC '10.5'",
            &contract,
        )
        .expect("valid");
        let schema = crate::warehouse::table_schema(&contract);
        let hour = 3_600_000_000i64;
        let at_ten = 1_617_444_000_000_000i64; // 2021-04-03T10:00:00Z
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(
                    Decimal128Array::from(vec![1051, 1050, 2000])
                        .with_precision_and_scale(12, 2)
                        .expect("decimal"),
                ),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![at_ten, at_ten, at_ten - hour])
                        .with_timezone("UTC"),
                ),
                Arc::new(datafusion::arrow::array::Date32Array::from(vec![18720; 3])),
            ],
        )
        .expect("batch");
        let expr = datafusion_filter(&filter)
            .expect("compiles")
            .expect("a filter");
        let df_schema = DFSchema::try_from(schema.as_ref().clone()).expect("schema");
        let result = SessionContext::new()
            .create_physical_expr(expr, &df_schema)
            .expect("physical")
            .evaluate(&batch)
            .expect("evaluates")
            .into_array(3)
            .expect("array");
        let kept = result
            .as_any()
            .downcast_ref::<BooleanArray>()
            .expect("booleans");
        assert_eq!(
            (0..3).map(|i| kept.value(i)).collect::<Vec<_>>(),
            [true, false, false]
        );
    }
}
