//! View filters: a restricted SQL boolean expression over a dataset's columns.
//!
//! The filter is parsed into an AST and walked against an allow-list: column references,
//! literals, comparisons, AND/OR/NOT, IS [NOT] NULL, IN and LIKE. Warehouses never see the text
//! the user wrote: the embedded one compiles the AST to a DataFusion expression, and BigQuery
//! gets the AST rendered with every literal escaped, so a filter cannot smuggle in a statement,
//! a subquery or a function call, nor change the meaning of a string literal.

use std::fmt;

use datafusion::arrow::datatypes::i256;
use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, TypedString, UnaryOperator, Value};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use super::values::{self, DecimalSpec};
use super::{ColumnType, Contract, PiiHandling};

/// Why a filter was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError(String);

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "filter {}", self.0)
    }
}

/// A validated filter, safe to render into SQL for any warehouse.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewFilter {
    expr: Option<Expr>,
}

/// What an expression evaluates to, for the type checks a reviewer would expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
    Boolean,
    Null,
    Date,
    Timestamp,
    Datetime,
    Bytes,
}

/// A typed literal (`TIMESTAMP '2021-04-03T00:00:00Z'`, `NUMERIC '12.50'`) as the value it
/// denotes, read by the same rules as loaded values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TypedLiteral {
    Date(i32),
    /// Microseconds since the epoch, UTC.
    Timestamp(i64),
    /// Microseconds since 1970-01-01T00:00:00, no zone.
    Datetime(i64),
    /// The unscaled value and its scale: the digits the literal wrote after the point.
    Numeric {
        unscaled: i256,
        scale: u8,
    },
}

/// The widest decimal a literal may write: BIGNUMERIC's.
const LITERAL_DECIMAL: DecimalSpec = DecimalSpec {
    precision: DecimalSpec::MAX_PRECISION,
    scale: DecimalSpec::MAX_SCALE,
};

impl TypedLiteral {
    /// Reads `TYPE 'text'`; the error says why the text is not a value of the type.
    pub fn parse(typed: &TypedString) -> Result<Self, FilterError> {
        let type_name = typed.data_type.to_string().to_ascii_uppercase();
        let Value::SingleQuotedString(text) = &typed.value.value else {
            return Err(reject(format!("the literal {typed}")));
        };
        let refused = |e: String| FilterError(format!("has {type_name} {text:?}, which {e}"));
        Ok(match type_name.as_str() {
            "DATE" => Self::Date(values::parse_date(text, None).map_err(refused)?),
            "TIMESTAMP" => Self::Timestamp(values::parse_timestamp(text, None).map_err(refused)?),
            "DATETIME" => Self::Datetime(values::parse_datetime(text, None).map_err(refused)?),
            "NUMERIC" | "BIGNUMERIC" | "DECIMAL" => {
                let unscaled = values::parse_decimal(text, LITERAL_DECIMAL).map_err(refused)?;
                // Keep only the digits the literal has after the point.
                let mut scale = LITERAL_DECIMAL.scale;
                let mut value = unscaled;
                let ten = i256::from_i128(10);
                while scale > 0 && value.wrapping_rem(ten) == i256::ZERO {
                    value = value.wrapping_div(ten);
                    scale -= 1;
                }
                Self::Numeric {
                    unscaled: value,
                    scale,
                }
            }
            _ => {
                return Err(reject(format!(
                    "a {type_name} literal (typed literals are DATE, TIMESTAMP, DATETIME and NUMERIC)"
                )));
            }
        })
    }

    fn kind(self) -> Kind {
        match self {
            Self::Date(_) => Kind::Date,
            Self::Timestamp(_) => Kind::Timestamp,
            Self::Datetime(_) => Kind::Datetime,
            Self::Numeric { .. } => Kind::Number,
        }
    }

    /// The literal in GoogleSQL, written from the value (never from the user's text).
    fn googlesql(self) -> String {
        match self {
            Self::Date(days) => format!(
                "DATE '{}'",
                values::days_to_date(days).map_or_else(String::new, |d| d.to_string())
            ),
            Self::Timestamp(micros) => {
                format!("TIMESTAMP '{}'", values::format_timestamp(micros))
            }
            Self::Datetime(micros) => format!("DATETIME '{}'", values::format_datetime(micros)),
            Self::Numeric { unscaled, scale } => {
                let text = values::format_decimal(unscaled, scale);
                let integer_digits = text
                    .trim_start_matches('-')
                    .split('.')
                    .next()
                    .map_or(0, str::len);
                let fits = scale <= 9 && integer_digits <= 29;
                if fits {
                    format!("NUMERIC '{text}'")
                } else {
                    format!("BIGNUMERIC '{text}'")
                }
            }
        }
    }
}

impl ViewFilter {
    /// Parses `text` and checks it against the allow-list and the contract's columns. An empty
    /// filter keeps every row.
    pub fn parse(text: &str, contract: &Contract) -> Result<Self, FilterError> {
        if text.trim().is_empty() {
            return Ok(Self { expr: None });
        }
        // Every pass over a filter recurses over its tree, so a contract cannot be allowed to
        // nest one deep enough to exhaust the stack.
        if text.len() > MAX_FILTER_BYTES {
            return Err(FilterError(format!(
                "is {} bytes; at most {MAX_FILTER_BYTES} are accepted",
                text.len()
            )));
        }
        let dialect = GenericDialect {};
        let mut parser = Parser::new(&dialect)
            .try_with_sql(text)
            .map_err(|e| FilterError(format!("{text:?} does not parse: {e}")))?;
        let expr = parser
            .parse_expr()
            .map_err(|e| FilterError(format!("{text:?} does not parse: {e}")))?;
        let rest = parser.peek_token();
        if rest.token != Token::EOF {
            return Err(FilterError(format!(
                "{text:?} has trailing input starting at {}: a filter is one boolean expression",
                rest.token
            )));
        }
        if depth(&expr) > MAX_FILTER_DEPTH {
            return Err(FilterError(format!(
                "nests deeper than {MAX_FILTER_DEPTH} levels; split it into simpler conditions"
            )));
        }
        match check(&expr, contract)? {
            Kind::Boolean | Kind::Null => Ok(Self { expr: Some(expr) }),
            other => Err(FilterError(format!(
                "{text:?} is not a boolean expression (it is {other:?})"
            ))),
        }
    }

    /// The validated expression, for warehouses that compile it (the embedded one builds a
    /// DataFusion expression from it); `None` keeps every row.
    pub fn ast(&self) -> Option<&Expr> {
        self.expr.as_ref()
    }

    /// The filter as generic SQL text, for people to read. No warehouse executes this text: it
    /// would be parsed a second time, by rules that may not be the first parser's.
    pub fn to_sql(&self) -> Option<String> {
        self.expr.as_ref().map(ToString::to_string)
    }

    /// The filter in BigQuery's GoogleSQL. It differs from the generic rendering where GoogleSQL
    /// does: string literals escape with backslashes (a doubled quote is not an escape there,
    /// and `\b` would silently mean backspace), identifiers quote with backticks, and there
    /// is no ILIKE.
    pub fn to_bigquery_sql(&self) -> Option<String> {
        self.expr.as_ref().map(googlesql)
    }
}

const MAX_FILTER_BYTES: usize = 8192;
const MAX_FILTER_DEPTH: usize = 64;

/// How deep the tree is, counted without recursion (the tree is not yet known to be shallow).
fn depth(root: &Expr) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(root, 1usize)];
    while let Some((expr, level)) = pending.pop() {
        deepest = deepest.max(level);
        if level > MAX_FILTER_DEPTH {
            break;
        }
        let next = level + 1;
        match expr {
            Expr::Nested(inner)
            | Expr::UnaryOp { expr: inner, .. }
            | Expr::IsNull(inner)
            | Expr::IsNotNull(inner) => pending.push((inner, next)),
            Expr::BinaryOp { left, right, .. } => {
                pending.push((left, next));
                pending.push((right, next));
            }
            Expr::InList { expr, list, .. } => {
                pending.push((expr, next));
                pending.extend(list.iter().map(|item| (item, next)));
            }
            Expr::Like { expr, pattern, .. } | Expr::ILike { expr, pattern, .. } => {
                pending.push((expr, next));
                pending.push((pattern, next));
            }
            _ => {}
        }
    }
    deepest
}

fn reject(what: impl fmt::Display) -> FilterError {
    FilterError(format!(
        "uses {what}, which is not allowed: use columns, literals, comparisons, AND/OR/NOT, IS [NOT] NULL, IN and LIKE"
    ))
}

fn check(expr: &Expr, contract: &Contract) -> Result<Kind, FilterError> {
    match expr {
        Expr::Identifier(ident) => {
            // Quoted identifiers could differ from the contract's names only by case or quoting
            // tricks; the contract's names are plain snake_case, so require them plain.
            if ident.quote_style.is_some() {
                return Err(FilterError(format!(
                    "column {ident} must be written without quotes"
                )));
            }
            let column = contract.column(&ident.value).ok_or_else(|| {
                FilterError(format!(
                    "refers to column {:?}, which is not in dataset {}",
                    ident.value, contract.name
                ))
            })?;
            if column.pii_handling == PiiHandling::Drop {
                return Err(FilterError(format!(
                    "refers to column {:?}, which is dropped at publish",
                    ident.value
                )));
            }
            Ok(match column.column_type {
                ColumnType::String => Kind::Text,
                ColumnType::Int64 | ColumnType::Float64 | ColumnType::Numeric => Kind::Number,
                ColumnType::Bool => Kind::Boolean,
                ColumnType::Date => Kind::Date,
                ColumnType::Timestamp => Kind::Timestamp,
                ColumnType::Datetime => Kind::Datetime,
                ColumnType::Bytes => Kind::Bytes,
            })
        }
        Expr::Value(value) => match &value.value {
            Value::Number(..) => Ok(Kind::Number),
            Value::SingleQuotedString(_) => Ok(Kind::Text),
            Value::Boolean(_) => Ok(Kind::Boolean),
            Value::Null => Ok(Kind::Null),
            other => Err(reject(format!("the literal {other}"))),
        },
        Expr::TypedString(typed) => TypedLiteral::parse(typed).map(TypedLiteral::kind),
        Expr::Nested(inner) => check(inner, contract),
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => expect_boolean(expr, contract).map(|()| Kind::Boolean),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } if matches!(expr.as_ref(), Expr::Value(_)) => match check(expr, contract)? {
            Kind::Number => Ok(Kind::Number),
            _ => Err(reject("a minus sign on a non-number")),
        },
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::And | BinaryOperator::Or => {
                expect_boolean(left, contract)?;
                expect_boolean(right, contract)?;
                Ok(Kind::Boolean)
            }
            BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq => {
                let (l, r) = (check(left, contract)?, check(right, contract)?);
                comparable(l, r, expr)?;
                Ok(Kind::Boolean)
            }
            other => Err(reject(format!("the operator {other}"))),
        },
        Expr::IsNull(inner) | Expr::IsNotNull(inner) => {
            check(inner, contract)?;
            Ok(Kind::Boolean)
        }
        Expr::InList {
            expr: subject,
            list,
            ..
        } => {
            let subject_kind = check(subject, contract)?;
            for item in list {
                if !matches!(
                    item,
                    Expr::Value(_) | Expr::UnaryOp { .. } | Expr::TypedString(_)
                ) {
                    return Err(reject(format!(
                        "{item} inside IN (only literals are allowed)"
                    )));
                }
                comparable(subject_kind, check(item, contract)?, expr)?;
            }
            Ok(Kind::Boolean)
        }
        Expr::Like {
            expr: subject,
            pattern,
            escape_char,
            ..
        }
        | Expr::ILike {
            expr: subject,
            pattern,
            escape_char,
            ..
        } => {
            if escape_char.is_some() {
                return Err(reject("LIKE ... ESCAPE"));
            }
            if check(subject, contract)? != Kind::Text {
                return Err(FilterError(format!(
                    "applies LIKE to a non-text value in {expr}"
                )));
            }
            match pattern.as_ref() {
                Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)) => {
                    Ok(Kind::Boolean)
                }
                other => Err(reject(format!(
                    "the LIKE pattern {other} (only a quoted string is allowed)"
                ))),
            }
        }
        Expr::Function(f) => Err(reject(format!("the function {}", f.name))),
        Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
            Err(reject("a subquery"))
        }
        Expr::CompoundIdentifier(parts) => Err(FilterError(format!(
            "refers to {}: use plain column names",
            parts
                .iter()
                .map(|p| p.value.as_str())
                .collect::<Vec<_>>()
                .join(".")
        ))),
        other => Err(reject(format!("the expression {other}"))),
    }
}

fn expect_boolean(expr: &Expr, contract: &Contract) -> Result<(), FilterError> {
    match check(expr, contract)? {
        Kind::Boolean | Kind::Null => Ok(()),
        _ => Err(FilterError(format!(
            "expects a boolean, but {expr} is not one"
        ))),
    }
}

fn comparable(left: Kind, right: Kind, whole: &Expr) -> Result<(), FilterError> {
    if left == Kind::Bytes || right == Kind::Bytes {
        return Err(FilterError(format!(
            "compares bytes in {whole}: bytes columns take only IS [NOT] NULL"
        )));
    }
    let ok = left == right
        || left == Kind::Null
        || right == Kind::Null
        // Dates compare with 'YYYY-MM-DD' literals.
        || matches!((left, right), (Kind::Date, Kind::Text) | (Kind::Text, Kind::Date));
    if ok {
        Ok(())
    } else {
        Err(FilterError(format!(
            "compares {left:?} with {right:?} in {whole}"
        )))
    }
}

/// A GoogleSQL string literal: `'...'` with backslash escapes, and every control character
/// (NUL included) as `\uXXXX`, so the literal holds exactly the parsed value.
fn googlesql_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '`' => out.push_str("\\`"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            other => out.push(other),
        }
    }
    out.push('\'');
    out
}

/// Renders a filter that `check` accepted. Every sub-expression is parenthesized, so operator
/// precedence is the parser's, not BigQuery's.
fn googlesql(expr: &Expr) -> String {
    match expr {
        Expr::Identifier(ident) => format!("`{}`", ident.value),
        Expr::Value(value) => match &value.value {
            Value::SingleQuotedString(text) => googlesql_string(text),
            Value::Boolean(true) => "TRUE".into(),
            Value::Boolean(false) => "FALSE".into(),
            Value::Null => "NULL".into(),
            other => other.to_string(),
        },
        // `check` parsed it; a literal that does not parse cannot reach here.
        Expr::TypedString(typed) => {
            TypedLiteral::parse(typed).map_or_else(|_| "NULL".to_owned(), TypedLiteral::googlesql)
        }
        Expr::Nested(inner) => format!("({})", googlesql(inner)),
        Expr::UnaryOp { op, expr } => match op {
            UnaryOperator::Not => format!("NOT ({})", googlesql(expr)),
            other => format!("{other}{}", googlesql(expr)),
        },
        Expr::BinaryOp { left, op, right } => {
            format!("({}) {op} ({})", googlesql(left), googlesql(right))
        }
        Expr::IsNull(inner) => format!("({}) IS NULL", googlesql(inner)),
        Expr::IsNotNull(inner) => format!("({}) IS NOT NULL", googlesql(inner)),
        Expr::InList {
            expr,
            list,
            negated,
        } => format!(
            "({}) {}IN ({})",
            googlesql(expr),
            if *negated { "NOT " } else { "" },
            list.iter().map(googlesql).collect::<Vec<_>>().join(", ")
        ),
        Expr::Like {
            negated,
            expr,
            pattern,
            ..
        } => format!(
            "({}) {}LIKE {}",
            googlesql(expr),
            if *negated { "NOT " } else { "" },
            googlesql(pattern)
        ),
        Expr::ILike {
            negated,
            expr,
            pattern,
            ..
        } => format!(
            "LOWER({}) {}LIKE LOWER({})",
            googlesql(expr),
            if *negated { "NOT " } else { "" },
            googlesql(pattern)
        ),
        // `check` admits nothing else; the generic rendering is the best remaining guess.
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::tests::catalog;

    fn parse(text: &str) -> Result<ViewFilter, FilterError> {
        ViewFilter::parse(text, &catalog())
    }

    #[test]
    fn the_team_filters_parse_and_render_from_the_ast() {
        let filter =
            parse("brand = 'Samsung' AND year_release > 2000 AND (image IS NULL OR image = '')")
                .expect("valid");
        assert_eq!(
            filter.to_sql().as_deref(),
            Some("brand = 'Samsung' AND year_release > 2000 AND (image IS NULL OR image = '')")
        );
        assert!(parse("image IS NOT NULL AND image <> ''").is_ok());
        assert!(parse("brand IN ('HP', 'Dell') AND NOT comment LIKE '%Lorem%'").is_ok());
        assert_eq!(parse("  ").expect("empty").to_sql(), None);
    }

    #[test]
    fn bigquery_rendering_escapes_strings_and_replaces_ilike() {
        let filter = parse(r"brand = 'O''Neil' OR comment ILIKE '%C:\temp%' AND NOT image IS NULL")
            .expect("valid");
        assert_eq!(
            filter.to_bigquery_sql().as_deref(),
            Some(
                r"((`brand`) = ('O\'Neil')) OR ((LOWER(`comment`) LIKE LOWER('%C:\\temp%')) AND (NOT ((`image`) IS NULL)))"
            )
        );
        let team_b =
            parse("brand IN ('Samsung') AND year_release > -1 AND image <> ''").expect("valid");
        assert_eq!(
            team_b.to_bigquery_sql().as_deref(),
            Some(
                "(((`brand`) IN ('Samsung')) AND ((`year_release`) > (-1))) AND ((`image`) <> (''))"
            )
        );
    }

    #[test]
    fn injected_sql_is_refused() {
        for attack in [
            "1 = 1; DROP TABLE catalog",
            "brand = 'x' UNION SELECT * FROM secrets",
            "brand = 'x') OR (1 = 1",
            "brand IN (SELECT brand FROM other)",
            "EXISTS (SELECT 1)",
            "brand = 'x' -- comment\n OR 1 = 1; DELETE FROM t",
            "sleep(10) = 0",
            "catalog.brand = 'x'",
            "\"brand\" = 'x'",
            "brand = CAST(1 AS VARCHAR)",
            "brand || 'x' = 'y'",
        ] {
            assert!(parse(attack).is_err(), "{attack:?} must be refused");
        }
    }

    #[test]
    fn deep_or_long_filters_are_refused_before_any_recursion() {
        let deep = vec!["brand = 'x'"; 200].join(" OR ");
        let err = parse(&deep).unwrap_err().to_string();
        assert!(err.contains("nests deeper than 64"), "{err}");
        let long = format!("brand = '{}'", "x".repeat(10_000));
        let err = parse(&long).unwrap_err().to_string();
        assert!(err.contains("at most 8192"), "{err}");
        let nested = format!("{}brand = 'x'{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&nested).is_err());
        assert!(parse(&vec!["brand = 'x'"; 20].join(" OR ")).is_ok());
    }

    #[test]
    fn unknown_columns_and_type_mismatches_are_refused() {
        let err = parse("price > 10").unwrap_err().to_string();
        assert!(err.contains("\"price\""), "{err}");
        let err = parse("year_release = 'recent'").unwrap_err().to_string();
        assert!(err.contains("compares"), "{err}");
        let err = parse("year_release LIKE '19%'").unwrap_err().to_string();
        assert!(err.contains("LIKE"), "{err}");
        let err = parse("brand").unwrap_err().to_string();
        assert!(err.contains("not a boolean"), "{err}");
    }

    fn orders() -> Contract {
        Contract::from_yaml(
            "name: shop.orders\nowner: team:shop\ncolumns:\n  \
             - {name: price, type: numeric, precision: 12, scale: 2}\n  \
             - {name: sold_at, type: timestamp}\n  \
             - {name: seen, type: datetime}\n  \
             - {name: day, type: date}\n  \
             - {name: blob, type: bytes}\n",
        )
        .expect("valid")
    }

    #[test]
    fn typed_literals_compare_with_columns_of_their_type_and_render_from_the_value() {
        let contract = orders();
        let filter = ViewFilter::parse(
            "sold_at >= TIMESTAMP '2021-04-03 12:00:00+02:00' AND seen < DATETIME '2021-04-04T00:00:00' \
             AND price > NUMERIC '10.50' AND day = DATE '2021-04-03' AND blob IS NOT NULL",
            &contract,
        )
        .expect("valid");
        assert_eq!(
            filter.to_bigquery_sql().as_deref(),
            Some(
                "(((((`sold_at`) >= (TIMESTAMP '2021-04-03T10:00:00.000000Z')) AND ((`seen`) < \
                 (DATETIME '2021-04-04T00:00:00.000000'))) AND ((`price`) > (NUMERIC '10.5'))) AND \
                 ((`day`) = (DATE '2021-04-03'))) AND ((`blob`) IS NOT NULL)"
            )
        );
        for (text, expected) in [
            ("sold_at > TIMESTAMP '2021-04-03T10:00:00'", "no UTC offset"),
            ("sold_at > TIMESTAMP 'tomorrow'", "RFC 3339"),
            (
                "sold_at > '2021-04-03T10:00:00Z'",
                "compares Timestamp with Text",
            ),
            (
                "sold_at > DATETIME '2021-04-03T10:00:00'",
                "compares Timestamp with Datetime",
            ),
            ("price > NUMERIC '1x'", "not a decimal"),
            ("blob = 'aGk='", "bytes columns take only IS"),
            ("day > INTERVAL '1' DAY", "not allowed"),
            ("sold_at > TIME '10:00:00'", "typed literals are"),
        ] {
            let err = ViewFilter::parse(text, &contract).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
