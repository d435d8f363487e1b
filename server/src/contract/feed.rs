//! A contract's scheduled feed: where each day's file appears, so the server publishes it
//! without a cron job on the team's side. Days are UTC dates.

use std::time::Duration;

use chrono::NaiveDate;
use chrono::format::{Item, StrftimeItems};
use serde::{Deserialize, Serialize};

/// `source_template` rendered for each day of the last `lookback_days` days (today included),
/// looked at every `check_every`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feed {
    /// A source URI with a `{date}` (`2024-01-31`) or `{date:FORMAT}` placeholder, FORMAT in
    /// strftime's notation: `s3://drops/catalog_{date:%Y%m%d}.csv`.
    pub source_template: String,
    /// A duration such as `15m`, `1h` or `1h 30m`: at least a minute, at most a day.
    #[serde(default = "Feed::default_check_every")]
    pub check_every: String,
    /// How many days before today are still looked for, so a late file is picked up.
    #[serde(default = "Feed::default_lookback_days")]
    pub lookback_days: u32,
}

const SHORTEST_INTERVAL: Duration = Duration::from_secs(60);
const LONGEST_INTERVAL: Duration = Duration::from_secs(24 * 3600);
const LONGEST_LOOKBACK: u32 = 31;
const PLACEHOLDER: &str = "{date";

impl Feed {
    /// A feed of `source_template` with the default interval and lookback.
    pub fn at(source_template: impl Into<String>) -> Self {
        Self {
            source_template: source_template.into(),
            check_every: Self::default_check_every(),
            lookback_days: Self::default_lookback_days(),
        }
    }

    fn default_check_every() -> String {
        "15m".into()
    }

    fn default_lookback_days() -> u32 {
        2
    }

    pub fn interval(&self) -> Duration {
        humantime::parse_duration(&self.check_every).unwrap_or(SHORTEST_INTERVAL)
    }

    /// The source of `day`'s file.
    pub fn source_for(&self, day: NaiveDate) -> String {
        let mut uri = String::with_capacity(self.source_template.len() + 8);
        let mut rest = self.source_template.as_str();
        while let Some(start) = rest.find(PLACEHOLDER) {
            let Some(length) = rest[start..].find('}') else {
                break;
            };
            let placeholder = &rest[start + 1..start + length];
            let format = placeholder.strip_prefix("date:").unwrap_or("%Y-%m-%d");
            uri.push_str(&rest[..start]);
            uri.push_str(&day.format(format).to_string());
            rest = &rest[start + length + 1..];
        }
        uri.push_str(rest);
        uri
    }

    /// The days looked for at `today`, newest first.
    pub fn window(&self, today: NaiveDate) -> Vec<NaiveDate> {
        (0..=self.lookback_days)
            .filter_map(|back| today.checked_sub_days(chrono::Days::new(back.into())))
            .collect()
    }

    pub fn check(&self) -> Result<(), String> {
        let interval = humantime::parse_duration(&self.check_every).map_err(|_| {
            format!(
                "feed.check_every {:?} is not a duration: write it as 15m, 1h or 1h 30m",
                self.check_every
            )
        })?;
        if !(SHORTEST_INTERVAL..=LONGEST_INTERVAL).contains(&interval) {
            return Err(format!(
                "feed.check_every {:?} must be between 1m and 24h",
                self.check_every
            ));
        }
        if self.lookback_days > LONGEST_LOOKBACK {
            return Err(format!(
                "feed.lookback_days is {}; at most {LONGEST_LOOKBACK} days are looked back on",
                self.lookback_days
            ));
        }
        self.check_template()
    }

    fn check_template(&self) -> Result<(), String> {
        let template = &self.source_template;
        let invalid = |why: &str| Err(format!("feed.source_template {template:?}: {why}"));
        let Some((scheme, after_scheme)) = template.split_once("://") else {
            return invalid("must be a URI such as s3://bucket/path_{date}.csv");
        };
        // The bucket or host is what source bindings authorize; it must be the same every day.
        let authority_end = after_scheme.find('/').unwrap_or(after_scheme.len());
        if scheme.contains('{') || after_scheme[..authority_end].contains('{') {
            return invalid("the date may only appear in the path, not in the bucket or host");
        }
        let mut placeholders = 0;
        let mut rest = after_scheme;
        while let Some(start) = rest.find('{') {
            if rest[..start].contains('}') {
                return invalid("a } has no {");
            }
            let Some(length) = rest[start..].find('}') else {
                return invalid("a { is not closed");
            };
            let placeholder = &rest[start + 1..start + length];
            let format = match placeholder.strip_prefix("date:") {
                Some(format) => format,
                None if placeholder == "date" => "%Y-%m-%d",
                None => {
                    return invalid(&format!(
                        "{{{placeholder}}} is not a placeholder: use {{date}} or {{date:%Y%m%d}}"
                    ));
                }
            };
            if StrftimeItems::new(format).any(|item| matches!(item, Item::Error)) {
                return invalid(&format!("{format:?} is not a strftime date format"));
            }
            placeholders += 1;
            rest = &rest[start + length + 1..];
        }
        if placeholders == 0 {
            return invalid(
                "needs a {date} or {date:FORMAT} placeholder, or every day reads the same file",
            );
        }
        if rest.contains('}') {
            return invalid("a } has no {");
        }
        // Two days must never read the same file: the formats together must tell apart days,
        // months and years.
        let day = |text: &str| NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a date");
        let base = self.source_for(day("2024-01-01"));
        for other in ["2024-01-02", "2024-02-01", "2025-01-01"] {
            if self.source_for(day(other)) == base {
                return invalid(
                    "the date format does not tell every day apart (it needs the year, month and day)",
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(template: &str) -> Feed {
        Feed {
            source_template: template.into(),
            check_every: "15m".into(),
            lookback_days: 3,
        }
    }

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn templates_render_each_day() {
        let f = feed("s3://drops/catalog_{date:%Y%m%d}.csv");
        assert_eq!(f.check(), Ok(()));
        assert_eq!(
            f.source_for(day("2024-03-07")),
            "s3://drops/catalog_20240307.csv"
        );
        let f = feed("gs://drops/{date:%Y}/{date:%m}/{date:%d}/day-{date}.csv.gz");
        assert_eq!(f.check(), Ok(()));
        assert_eq!(
            f.source_for(day("2024-03-07")),
            "gs://drops/2024/03/07/day-2024-03-07.csv.gz"
        );
        assert_eq!(
            f.window(day("2024-03-02")),
            [
                day("2024-03-02"),
                day("2024-03-01"),
                day("2024-02-29"),
                day("2024-02-28")
            ]
        );
        assert_eq!(f.interval(), Duration::from_secs(900));
    }

    #[test]
    fn templates_that_would_read_the_wrong_file_are_refused() {
        for (template, why) in [
            ("s3://drops/catalog.csv", "needs a {date}"),
            ("s3://drops/catalog_{date:%m%d}.csv", "tell every day apart"),
            ("s3://drops/catalog_{date:%d}.csv", "tell every day apart"),
            (
                "s3://{date:%Y}-drops/catalog_{date}.csv",
                "not in the bucket",
            ),
            ("{date}://drops/catalog.csv", "not in the bucket"),
            ("s3://drops/catalog_{day}.csv", "is not a placeholder"),
            ("s3://drops/catalog_{date:%Q}.csv", "not a strftime"),
            ("s3://drops/catalog_{date.csv", "not closed"),
            ("s3://drops/catalog_}{date}.csv", "has no {"),
            ("drops/catalog_{date}.csv", "must be a URI"),
        ] {
            let err = feed(template).check().unwrap_err();
            assert!(err.contains(why), "{template}: {err}");
        }
    }

    #[test]
    fn intervals_and_lookback_are_bounded() {
        let mut f = feed("s3://drops/{date}.csv");
        for (every, ok) in [
            ("1m", true),
            ("1h 30m", true),
            ("24h", true),
            ("30s", false),
            ("2d", false),
            ("soon", false),
        ] {
            f.check_every = every.into();
            assert_eq!(f.check().is_ok(), ok, "{every}");
        }
        f.check_every = "15m".into();
        f.lookback_days = 32;
        assert!(f.check().unwrap_err().contains("at most 31"));
    }
}
