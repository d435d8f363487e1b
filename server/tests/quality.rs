//! Quality rules over the wire, on both warehouses: a day that breaks an `error` rule is refused
//! with the rule, its count and where the rows are (never their values) and the previous day
//! stays visible; `warn` rules publish and are recorded; row counts compare with the live
//! previous day.

#![allow(clippy::unwrap_used)]

use ferry_proto::v1 as pb;
use ferry_testkit::*;

const DAY: &str = "2021-04-03";
const NEXT: &str = "2021-04-04";

/// The catalog contract with the rules the catalog really carries, and one `warn` rule that
/// its data breaks (descriptions other than "Male").
fn contract_with_rules() -> String {
    let currencies = "[IDR, CNY, EUR, RUB, PHP, BRL, USD, PLN, SEK, NOK, PEN, JPY, ZAR, TJS, UAH, \
                      CZK, ARS, COP, MXN, THB]";
    let with_rules = CONTRACT_YAML
        .replace(
            "    quality:\n      - pattern: \"^[A-Z]{3}$\"\n",
            &format!(
                "    quality:\n      - accepted_values: {currencies}\n      - pattern: \"^[A-Z]{{3}}$\"\n        \
                 severity: warn\n"
            ),
        )
        .replace(
            "    quality: [{min: 1950}, {max: 2030}]\n",
            "    quality: [{min: 1950}, {max: 2027}]\n",
        )
        .replace(
            "    description: Target audience (Male, Female or empty).\n",
            "    description: Target audience (Male, Female or empty).\n    quality:\n      - \
             accepted_values: [Male]\n        severity: warn\n",
        )
        .replace(
            "quality:\n  - row_count_change: {max_drop_percent: 50}\n    severity: warn\n",
            "quality:\n  - row_count: {min: 50}\n  - row_count_change: {max_drop_percent: 50}\n",
        );
    assert_eq!(with_rules.matches("max: 2027").count(), 1, "{with_rules}");
    assert_eq!(
        with_rules.matches("accepted_values").count(),
        2,
        "{with_rules}"
    );
    assert_eq!(
        with_rules.matches("row_count: {min: 50}").count(),
        1,
        "{with_rules}"
    );
    with_rules
}

fn failed_rules(publication: &pb::Publication) -> Vec<(String, bool, u64)> {
    publication
        .quality
        .iter()
        .map(|o| (o.rule.clone(), o.passed, o.failed_rows))
        .collect()
}

async fn rules_refuse_bad_days_and_record_every_outcome(
    client: &mut Client,
    scratch: &std::path::Path,
) {
    register_yaml(client, &contract_with_rules()).await.unwrap();
    let good = write_file(scratch, "day1.csv", DAY_1);
    let published = publish(client, RAW, DAY, &good).await.unwrap();
    let publication = published.publication.unwrap();
    let female = expected_rows(DAY_1)
        .iter()
        .filter(|r| r[4].as_deref() == Some("Female"))
        .count() as u64;
    let outcomes = failed_rules(&publication);
    assert_eq!(outcomes.len(), 8, "{outcomes:?}");
    assert!(
        outcomes.contains(&(
            "description: accepted_values (1 value)".into(),
            false,
            female
        )),
        "the warn rule fails and the day publishes: {outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .filter(|o| o.0 != "description: accepted_values (1 value)")
            .all(|o| o.1)
    );
    // The ledger keeps them.
    let recorded = ledger(client, RAW, DAY).await;
    assert_eq!(failed_rules(&recorded[0]), outcomes);
    let rows_before = count(client, RAW, DAY).await;

    // One unknown currency on line 3: refused, with the rule, the count and the line only.
    let mut fields: Vec<Vec<String>> = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(DAY_1.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    fields[2][3] = "XAU".into();
    let mut bad = csv::Writer::from_writer(Vec::new());
    fields.iter().for_each(|row| bad.write_record(row).unwrap());
    let bad = write_file(scratch, "bad.csv", bad.into_inner().unwrap());
    for date in [DAY, NEXT] {
        let status = publish(client, RAW, date, &bad).await.unwrap_err();
        assert_reason(&status, "QUALITY_RULE_FAILED");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains(
                "currency: accepted_values (20 values) [error]: 1 row(s) failed (lines 3)"
            ),
            "{}",
            status.message()
        );
        assert!(!status.message().contains("XAU"), "{}", status.message());
        assert_eq!(
            error_metadata(&status)["first_rule"],
            "currency: accepted_values (20 values)"
        );
    }
    assert_eq!(
        count(client, RAW, DAY).await,
        rows_before,
        "the previous day stays visible"
    );
    assert_eq!(
        count(client, RAW, NEXT).await,
        0,
        "nothing of the bad day is visible"
    );
    let refused = ledger(client, RAW, NEXT).await;
    assert_eq!(refused[0].status, pb::PublicationStatus::Failed as i32);
    assert!(
        refused[0]
            .quality
            .iter()
            .any(|o| !o.passed && o.sample_lines == [3])
    );

    // Thirty rows the next day: below the row count and a drop of more than half.
    let few: String = DAY_1.lines().take(31).map(|l| format!("{l}\n")).collect();
    let few = write_file(scratch, "few.csv", few);
    let status = publish(client, RAW, NEXT, &few).await.unwrap_err();
    assert_reason(&status, "QUALITY_RULE_FAILED");
    let message = status.message();
    assert!(
        message.contains("dataset: row_count min 50 [error]: 30 rows, fewer than 50"),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "dataset: row_count_change max_drop 50% [error]: 30 rows against {rows_before} on the previous day"
        )),
        "{message}"
    );
    // A full next day publishes.
    let next = write_file(scratch, "day2.csv", DAY_2);
    publish(client, RAW, NEXT, &next).await.unwrap();
    assert_eq!(count(client, RAW, NEXT).await, expected_rows(DAY_2).len());
}

#[tokio::test(flavor = "multi_thread")]
async fn quality_rules_refuse_bad_days_and_record_outcomes() {
    let server = TestServer::start(None).await;
    let mut client = server.client().await;
    rules_refuse_bad_days_and_record_every_outcome(&mut client, server.scratch()).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn quality_rules_refuse_bad_days_and_record_outcomes_on_bigquery() {
    let bigquery = LocalBigQuery::start();
    let server = TestServer::start_configured(None, |config| bigquery.use_in(config)).await;
    let mut client = server.client().await;
    rules_refuse_bad_days_and_record_every_outcome(&mut client, server.scratch()).await;
    server.stop().await;
}
