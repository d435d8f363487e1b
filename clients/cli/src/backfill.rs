//! `ferry backfill`: publishes a range of days from a source template, one day at a time.
//!
//! One day at a time is what keeps a backfill inside BigQuery's fixed quotas: each day is one
//! load job into its own staging table and one transaction on the raw table and its views, so a
//! job never touches more than one partition (the limit is 4,000), the dataset's metadata is not
//! updated at all (5 updates per 10 s), and the table sees one DML transaction per day, never
//! two at once. Re-running a backfill is cheap and safe: days whose content is already live are
//! reported unchanged.

use std::io::Write;

use anyhow::{Context, bail};
use chrono::NaiveDate;

use crate::commands::{self, Client};
use crate::exit;

/// Renders `{date}` (YYYY-MM-DD) and `{date:FORMAT}` (strftime) in `template`.
pub fn render(template: &str, day: NaiveDate) -> anyhow::Result<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{date") {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let end = after
            .find('}')
            .with_context(|| format!("unclosed {{date in source template {template:?}"))?;
        let placeholder = &after[..=end];
        let format = match &placeholder[5..placeholder.len() - 1] {
            "" => "%Y-%m-%d",
            spec => spec.strip_prefix(':').with_context(|| {
                format!("write {{date}} or {{date:%Y%m%d}}, not {placeholder:?}")
            })?,
        };
        let items: Vec<_> = chrono::format::StrftimeItems::new(format).collect();
        if items.contains(&chrono::format::Item::Error) {
            bail!("{format:?} in {placeholder} is not a valid strftime format");
        }
        out.push_str(&day.format_with_items(items.into_iter()).to_string());
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if out == template {
        bail!("the source template {template:?} has no {{date}} or {{date:FORMAT}} placeholder");
    }
    Ok(out)
}

pub struct Plan {
    pub dataset: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub template: String,
    pub dry_run: bool,
    pub keep_going: bool,
    pub skip_missing: bool,
}

#[derive(Default)]
struct Tally {
    published: u32,
    unchanged: u32,
    missing: u32,
    failed: Vec<(NaiveDate, String)>,
}

pub async fn run(client: &mut Client, plan: Plan, out: &mut impl Write) -> anyhow::Result<()> {
    if plan.from > plan.to {
        bail!("--from {} is after --to {}", plan.from, plan.to);
    }
    let days: Vec<NaiveDate> = plan
        .from
        .iter_days()
        .take_while(|d| *d <= plan.to)
        .collect();
    let sources = days
        .iter()
        .map(|day| render(&plan.template, *day).map(|source| (*day, source)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    writeln!(
        out,
        "backfill {}: {} day(s), {} to {}, one day at a time",
        plan.dataset,
        days.len(),
        plan.from,
        plan.to
    )?;
    if plan.dry_run {
        for (day, source) in &sources {
            writeln!(out, "  {day}  {source}")?;
        }
        return Ok(());
    }
    let mut tally = Tally::default();
    for (index, (day, source)) in sources.iter().enumerate() {
        let date = day.to_string();
        write!(out, "[{}/{}] ", index + 1, sources.len())?;
        match commands::publish(client, &plan.dataset, &date, source, "", false).await {
            Ok(result) => {
                if result.unchanged {
                    tally.unchanged += 1;
                } else {
                    tally.published += 1;
                }
                commands::describe_publish(out, &result)?;
            }
            Err(error) => {
                let status = error.downcast_ref::<tonic::Status>();
                // Only a missing source is a missing day: a missing dataset or warehouse table
                // is a failure of every day.
                if plan.skip_missing
                    && status.and_then(exit::reason).as_deref() == Some("SOURCE_NOT_FOUND")
                {
                    tally.missing += 1;
                    writeln!(out, "{date}: no source at {source}; skipped")?;
                    continue;
                }
                let message = status.map_or_else(|| format!("{error:#}"), exit::describe);
                writeln!(out, "{date}: FAILED: {message}")?;
                tally.failed.push((*day, message));
                if !plan.keep_going {
                    break;
                }
            }
        }
        out.flush()?;
    }
    writeln!(
        out,
        "backfill {}: {} published, {} unchanged, {} missing, {} failed",
        plan.dataset,
        tally.published,
        tally.unchanged,
        tally.missing,
        tally.failed.len()
    )?;
    if let Some((day, _)) = tally.failed.first() {
        bail!(
            "{} day(s) failed, first {day}; re-run the same command to retry: days already live are skipped as unchanged",
            tally.failed.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn templates_render_the_day_in_the_asked_format() {
        assert_eq!(
            render("gs://b/catalog_{date:%Y%m%d}.csv", day("2021-04-03")).expect("renders"),
            "gs://b/catalog_20210403.csv"
        );
        assert_eq!(
            render("s3://b/{date:%Y}/{date:%m}/{date}.csv", day("2021-04-03")).expect("renders"),
            "s3://b/2021/04/2021-04-03.csv"
        );
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        let d = day("2021-04-03");
        assert!(
            render("gs://b/catalog.csv", d)
                .unwrap_err()
                .to_string()
                .contains("no {date}")
        );
        assert!(
            render("gs://b/{date:%Y", d)
                .unwrap_err()
                .to_string()
                .contains("unclosed")
        );
        assert!(render("gs://b/{dateY}.csv", d).is_err());
        assert!(
            render("gs://b/{date:%Q}.csv", d)
                .unwrap_err()
                .to_string()
                .contains("strftime")
        );
    }
}
