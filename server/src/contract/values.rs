//! Typed values written as text: how a source field, a JSON number or a filter literal becomes
//! a timestamp, a civil datetime, a date or an exact decimal, and how each is written back. One
//! set of rules, so a value a filter compares with means what a loaded value means.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike};
use datafusion::arrow::datatypes::i256;

/// Days from 0001-01-01 (chrono's day 1) to the Unix epoch, for Arrow's Date32.
const UNIX_EPOCH_CE_DAYS: i32 = 719_163;

/// A `numeric` column's precision and scale, and which BigQuery type holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecimalSpec {
    /// Significant digits in all.
    pub precision: u8,
    /// Digits after the decimal point.
    pub scale: u8,
}

impl DecimalSpec {
    /// BigQuery NUMERIC: 29 digits before the point, 9 after.
    pub const NUMERIC: DecimalSpec = DecimalSpec {
        precision: 38,
        scale: 9,
    };
    /// The widest decimal: BigQuery BIGNUMERIC's 38 digits on each side (76 in all, as Arrow's
    /// Decimal256 holds).
    pub const MAX_PRECISION: u8 = 76;
    pub const MAX_SCALE: u8 = 38;

    /// Whether BigQuery NUMERIC holds every value (otherwise BIGNUMERIC does), which is also
    /// whether 128 bits do.
    pub fn fits_numeric(self) -> bool {
        self.scale <= 9 && self.precision - self.scale <= 29
    }

    /// Why these bounds cannot be a column's, if they cannot.
    pub fn check(self) -> Result<(), String> {
        if self.precision == 0 || self.precision > Self::MAX_PRECISION {
            return Err(format!(
                "precision {} must be 1 to {}",
                self.precision,
                Self::MAX_PRECISION
            ));
        }
        if self.scale > self.precision || self.scale > Self::MAX_SCALE {
            return Err(format!(
                "scale {} must be at most the precision and at most {}",
                self.scale,
                Self::MAX_SCALE
            ));
        }
        if self.precision - self.scale > 38 {
            return Err(format!(
                "precision {} with scale {} leaves {} digits before the point; BigQuery \
                 BIGNUMERIC holds 38",
                self.precision,
                self.scale,
                self.precision - self.scale
            ));
        }
        Ok(())
    }
}

/// Parses a decimal exactly: digits, an optional point and an optional exponent
/// (`-12.50`, `1.5e3`). A value with more fractional digits than the scale is refused, never
/// rounded; one with more integer digits than `precision - scale` is out of range. The result is
/// the unscaled integer (`12.50` at scale 2 is 1250).
pub fn parse_decimal(text: &str, spec: DecimalSpec) -> Result<i256, String> {
    let text = text.trim();
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => {
            let exponent: i32 = unsigned[at + 1..]
                .parse()
                .map_err(|_| "is not a decimal number".to_owned())?;
            (&unsigned[..at], exponent)
        }
        None => (unsigned, 0),
    };
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (integer.is_empty() && fraction.is_empty())
        || !integer
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
        || exponent.unsigned_abs() > 400
    {
        return Err("is not a decimal number".into());
    }
    // All digits, and where the point sits among them once the exponent moved it.
    let digits: String = integer.chars().chain(fraction.chars()).collect();
    let point = integer.len() as i64 + i64::from(exponent);
    let significant_end = digits.trim_end_matches('0').len() as i64;
    // Zero has no digits after the point however it is written (`0E-10`).
    let fractional_digits = if significant_end == 0 {
        0
    } else {
        (significant_end - point).max(0)
    };
    if fractional_digits > i64::from(spec.scale) {
        return Err(format!(
            "has {fractional_digits} digits after the point; the column keeps {} (it is never \
             rounded)",
            spec.scale
        ));
    }
    // The unscaled value's digits: the digits moved `scale` places left of the point.
    let unscaled_end = point + i64::from(spec.scale);
    let mut unscaled = String::with_capacity(80);
    for position in 0..unscaled_end.max(0) {
        unscaled.push(
            usize::try_from(position)
                .ok()
                .and_then(|p| digits.as_bytes().get(p))
                .map_or('0', |b| char::from(*b)),
        );
    }
    let unscaled = unscaled.trim_start_matches('0');
    let integer_digits = unscaled.len().saturating_sub(usize::from(spec.scale));
    if integer_digits > usize::from(spec.precision - spec.scale) {
        return Err(format!(
            "is out of range: {integer_digits} digits before the point, the column holds {} \
             (precision {}, scale {})",
            spec.precision - spec.scale,
            spec.precision,
            spec.scale
        ));
    }
    let magnitude = if unscaled.is_empty() {
        i256::ZERO
    } else {
        i256::from_string(unscaled).ok_or_else(|| "is not a decimal number".to_owned())?
    };
    Ok(if negative {
        magnitude.wrapping_neg()
    } else {
        magnitude
    })
}

/// Writes an unscaled decimal with its point: 1250 at scale 2 is `12.50`.
pub fn format_decimal(unscaled: i256, scale: u8) -> String {
    let negative = unscaled < i256::ZERO;
    let digits = unscaled.wrapping_abs().to_string();
    let scale = usize::from(scale);
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (integer, fraction) = padded.split_at(padded.len() - scale);
    let sign = if negative { "-" } else { "" };
    if fraction.is_empty() {
        format!("{sign}{integer}")
    } else {
        format!("{sign}{integer}.{fraction}")
    }
}

/// Whether `format` is a chrono/strftime pattern that can read values (`%d/%m/%Y %H:%M`).
pub fn check_format(format: &str) -> Result<(), String> {
    if format.is_empty() || format.len() > 100 {
        return Err("must be 1 to 100 characters".into());
    }
    if StrftimeItems::new(format).any(|item| matches!(item, Item::Error)) {
        return Err(format!("{format:?} is not a strftime pattern"));
    }
    // chrono reads `%Z` by skipping the zone's name: `CEST` would silently load as UTC.
    if format.contains("%Z") {
        return Err(format!(
            "{format:?} uses %Z, a zone name, which cannot be read; write the offset with %z"
        ));
    }
    Ok(())
}

/// Whether a date or datetime format reads an offset, which those types cannot keep.
pub fn format_has_zone(format: &str) -> bool {
    format_has_offset(format)
}

/// Refuses fractional seconds written with more than nine digits, which chrono would cut short
/// without a word (the type keeps microseconds; `micros` refuses what they cannot hold).
fn check_fraction_digits(text: &str) -> Result<(), String> {
    let Some(dot) = text.find('.') else {
        return Ok(());
    };
    let digits = text[dot + 1..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    if digits > 9 {
        return Err("has digits below the microsecond, which are not kept".into());
    }
    Ok(())
}

fn format_has_offset(format: &str) -> bool {
    format.contains("%z")
        || format.contains("%:z")
        || format.contains("%#z")
        || format.contains("%::z")
}

/// Microseconds since the epoch, refusing what they cannot hold exactly.
fn micros(nanos_of_second: u32, seconds: i64) -> Result<i64, String> {
    if !nanos_of_second.is_multiple_of(1000) {
        return Err("has digits below the microsecond, which are not kept".into());
    }
    seconds
        .checked_mul(1_000_000)
        .and_then(|s| s.checked_add(i64::from(nanos_of_second / 1000)))
        .ok_or_else(|| "is out of range".to_owned())
}

/// An instant: RFC 3339 / ISO 8601 with an offset (`2021-04-03T10:15:00Z`,
/// `2021-04-03 12:15:00+02:00`), or as `format` says. A format without an offset reads UTC.
/// Returns microseconds since the Unix epoch.
pub fn parse_timestamp(text: &str, format: Option<&str>) -> Result<i64, String> {
    let text = text.trim();
    check_fraction_digits(text)?;
    let instant = match format {
        None => DateTime::parse_from_rfc3339(text)
            .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
            .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%z"))
            .map(|t| t.to_utc())
            .map_err(|_| {
                if parse_datetime(text, None).is_ok() {
                    "has no UTC offset: write Z or +hh:mm, or give the column a format".to_owned()
                } else {
                    "is not an RFC 3339 timestamp (2021-04-03T10:15:00Z)".to_owned()
                }
            })?,
        Some(format) if format_has_offset(format) => DateTime::parse_from_str(text, format)
            .map(|t| t.to_utc())
            .map_err(|_| format!("does not match the format {format:?}"))?,
        Some(format) => NaiveDateTime::parse_from_str(text, format)
            .map(|t| t.and_utc())
            .map_err(|_| format!("does not match the format {format:?}"))?,
    };
    micros(instant.nanosecond(), instant.timestamp())
}

/// A civil date and time with no zone (`2021-04-03T10:15:00`, `2021-04-03 10:15:00.5`), or as
/// `format` says. Returns microseconds since 1970-01-01T00:00:00 (no zone implied).
pub fn parse_datetime(text: &str, format: Option<&str>) -> Result<i64, String> {
    let text = text.trim();
    check_fraction_digits(text)?;
    let civil = match format {
        None => NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
            .map_err(|_| "is not a datetime (2021-04-03T10:15:00, no offset)".to_owned())?,
        Some(format) => NaiveDateTime::parse_from_str(text, format)
            .map_err(|_| format!("does not match the format {format:?}"))?,
    };
    let utc = civil.and_utc();
    micros(utc.nanosecond(), utc.timestamp())
}

/// A date (`2021-04-03`, or as `format` says), as days since the Unix epoch.
pub fn parse_date(text: &str, format: Option<&str>) -> Result<i32, String> {
    let text = text.trim();
    let date =
        NaiveDate::parse_from_str(text, format.unwrap_or("%Y-%m-%d")).map_err(
            |_| match format {
                Some(format) => format!("does not match the format {format:?}"),
                None => "is not a date (YYYY-MM-DD)".to_owned(),
            },
        )?;
    Ok(date_to_days(date))
}

pub fn date_to_days(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - UNIX_EPOCH_CE_DAYS
}

pub fn days_to_date(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days.checked_add(UNIX_EPOCH_CE_DAYS)?)
}

/// An instant as RFC 3339 in UTC with microseconds: `2021-04-03T10:15:00.000000Z`.
pub fn format_timestamp(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros).map_or_else(
        || format!("{micros}µs"),
        |t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
    )
}

/// A civil datetime as ISO 8601 with microseconds: `2021-04-03T10:15:00.000000`.
pub fn format_datetime(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros).map_or_else(
        || format!("{micros}µs"),
        |t| t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decimal(text: &str, precision: u8, scale: u8) -> Result<String, String> {
        let spec = DecimalSpec { precision, scale };
        parse_decimal(text, spec).map(|v| format_decimal(v, scale))
    }

    #[test]
    fn decimals_parse_exactly_and_refuse_rounding_and_overflow() {
        assert_eq!(decimal("12.5", 10, 2).as_deref(), Ok("12.50"));
        assert_eq!(decimal("-0.07", 10, 2).as_deref(), Ok("-0.07"));
        assert_eq!(decimal("1.5e3", 10, 2).as_deref(), Ok("1500.00"));
        assert_eq!(decimal("125E-2", 10, 2).as_deref(), Ok("1.25"));
        assert_eq!(decimal("12.3400", 10, 2).as_deref(), Ok("12.34"));
        assert_eq!(decimal("0", 10, 0).as_deref(), Ok("0"));
        assert_eq!(decimal("0E-10", 10, 2).as_deref(), Ok("0.00"));
        assert_eq!(decimal("-0.000", 10, 2).as_deref(), Ok("0.00"));
        assert_eq!(decimal(".5", 3, 1).as_deref(), Ok("0.5"));
        assert!(
            decimal("12.345", 10, 2)
                .unwrap_err()
                .contains("3 digits after the point")
        );
        assert!(
            decimal("123456789", 10, 2)
                .unwrap_err()
                .contains("out of range")
        );
        assert_eq!(decimal("12345678", 10, 2).as_deref(), Ok("12345678.00"));
        for bad in [
            "", "-", "1.2.3", "12a", "1e", "0x10", "1e999999", "NaN", ".",
        ] {
            assert!(decimal(bad, 10, 2).is_err(), "{bad:?}");
        }
        // BIGNUMERIC's range: 38 digits on each side of the point.
        let wide = format!("{}.{}", "9".repeat(38), "1".repeat(38));
        assert_eq!(decimal(&wide, 76, 38).as_deref(), Ok(wide.as_str()));
        // NUMERIC's: 29 before, 9 after.
        assert!(decimal(&"9".repeat(30), 38, 9).is_err());
        assert!(decimal(&"9".repeat(29), 38, 9).is_ok());
    }

    #[test]
    fn decimal_bounds_are_checked() {
        assert!(DecimalSpec::NUMERIC.check().is_ok());
        assert!(DecimalSpec::NUMERIC.fits_numeric());
        let big = DecimalSpec {
            precision: 76,
            scale: 38,
        };
        assert!(big.check().is_ok());
        assert!(!big.fits_numeric());
        for (precision, scale) in [(0, 0), (77, 0), (5, 6), (76, 37), (40, 39)] {
            assert!(
                DecimalSpec { precision, scale }.check().is_err(),
                "{precision},{scale}"
            );
        }
    }

    #[test]
    fn timestamps_need_an_offset_unless_a_format_says_otherwise() {
        let expected = 1_617_444_900_000_000; // 2021-04-03T10:15:00Z
        assert_eq!(parse_timestamp("2021-04-03T10:15:00Z", None), Ok(expected));
        assert_eq!(
            parse_timestamp("2021-04-03 12:15:00+02:00", None),
            Ok(expected)
        );
        assert_eq!(
            parse_timestamp("2021-04-03T12:15:00+0200", None),
            Ok(expected)
        );
        assert_eq!(
            parse_timestamp("2021-04-03T10:15:00.000001Z", None),
            Ok(expected + 1)
        );
        let err = parse_timestamp("2021-04-03T10:15:00", None).unwrap_err();
        assert!(err.contains("no UTC offset"), "{err}");
        let err = parse_timestamp("2021-04-03T10:15:00.0000001Z", None).unwrap_err();
        assert!(err.contains("microsecond"), "{err}");
        let err = parse_timestamp("2021-04-03T10:15:00.0000000009Z", None).unwrap_err();
        assert!(err.contains("microsecond"), "{err}");
        assert!(
            check_format("%Y-%m-%d %H:%M %Z")
                .unwrap_err()
                .contains("%Z")
        );
        assert_eq!(
            parse_timestamp("03/04/2021 10:15", Some("%d/%m/%Y %H:%M")),
            Ok(expected)
        );
        assert_eq!(format_timestamp(expected), "2021-04-03T10:15:00.000000Z");
    }

    #[test]
    fn datetimes_are_civil_and_dates_take_a_format() {
        let civil = parse_datetime("2021-04-03T10:15:00", None).expect("datetime");
        assert_eq!(parse_datetime("2021-04-03 10:15:00", None), Ok(civil));
        assert!(parse_datetime("2021-04-03T10:15:00Z", None).is_err());
        assert_eq!(format_datetime(civil), "2021-04-03T10:15:00.000000");
        assert_eq!(parse_date("03/04/2021", Some("%d/%m/%Y")), Ok(18720));
        assert_eq!(parse_date("2021-04-03", None), Ok(18720));
        assert!(parse_date("2021-13-03", None).is_err());
        assert!(check_format("%d/%m/%Y %H:%M").is_ok());
        assert!(check_format("%Q").is_err());
    }
}
