//! Work Ferry does on its own clock, over the wire: a day late against its SLA is announced
//! once (metric, audit event, signed webhook, retried when the receiver fails), a failed publish
//! is announced, and a scheduled feed publishes a day's file from moto when it appears or
//! changes, as the owner team, with one replica at a time holding it. The clock is a
//! `ManualClock` the test moves; the webhook receiver is a real HTTP server.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use ferry_proto::v1 as pb;
use ferry_server::clock::{Clock, ManualClock};
use ferry_server::registry::{FeedOutcome, Registry};
use ferry_testkit::*;
use hmac::{Hmac, Mac};

const SECRET: &str = "webhook-secret-for-tests-0123456789";
const BUCKET: &str = "catalog-drops";

/// `csv` with the first row's `year_release` (the last field) replaced by `year`.
fn with_bad_year(csv: &str, year: &str) -> String {
    let mut lines: Vec<String> = csv.split_inclusive('\n').map(str::to_owned).collect();
    let (head, _) = lines[1].trim_end().rsplit_once(',').unwrap();
    lines[1] = format!("{head},{year}\n");
    lines.concat()
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// Checks the `Ferry-Signature` header the way a receiver does: the HMAC of `t.body`.
fn assert_signed(received: &Received) {
    let header = received.header("ferry-signature");
    let (t, v1) = header
        .split_once(',')
        .and_then(|(t, v1)| Some((t.strip_prefix("t=")?, v1.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("signature header {header:?}"));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(&received.body);
    assert_eq!(hex::encode(mac.finalize().into_bytes()), v1, "{header}");
    let sent_at = t.parse::<i64>().unwrap();
    assert!((Utc::now().timestamp() - sent_at).abs() < 300, "{header}");
}

async fn start_with_webhook(clock: &ManualClock, receiver: &WebhookReceiver) -> TestServer {
    start_with_webhook_and(clock, receiver, |_| {}).await
}

async fn start_with_webhook_and(
    clock: &ManualClock,
    receiver: &WebhookReceiver,
    adjust: impl FnOnce(&mut ferry_server::Config),
) -> TestServer {
    let url = receiver.url();
    TestServer::start_on(Arc::new(clock.clone()), None, move |config| {
        config.notifications.webhook.url = Some(url);
        config.notifications.webhook.secret = Some(ferry_server::config::Secret::new(SECRET));
        config.notifications.webhook.first_retry_ms = 10;
        adjust(config);
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_day_is_announced_once_by_a_signed_webhook_that_is_retried() {
    // The receiver fails the first delivery; Ferry must retry it.
    let receiver = WebhookReceiver::start(&[500]).await;
    let clock = ManualClock::at(at("2021-04-04T05:59:00Z"));
    let server = start_with_webhook(&clock, &receiver).await;
    a_late_day_is_announced_once(&server, &clock, &receiver).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_day_is_announced_once_by_a_signed_webhook_that_is_retried_on_bigquery() {
    let bigquery = LocalBigQuery::start();
    let receiver = WebhookReceiver::start(&[500]).await;
    let clock = ManualClock::at(at("2021-04-04T05:59:00Z"));
    let server = start_with_webhook_and(&clock, &receiver, |config| bigquery.use_in(config)).await;
    a_late_day_is_announced_once(&server, &clock, &receiver).await;
    server.stop().await;
}

async fn a_late_day_is_announced_once(
    server: &TestServer,
    clock: &ManualClock,
    receiver: &WebhookReceiver,
) {
    let mut client = server.client().await;
    register_catalog(&mut client).await;
    let day1 = write_file(server.scratch(), "day1.csv", DAY_1);
    publish(&mut client, RAW, "2021-04-03", &day1)
        .await
        .unwrap();

    // The catalog is due by 06:00 UTC: a minute before, nothing is late.
    assert_eq!(server.ferry.check_freshness().await.unwrap(), []);
    clock.set(at("2021-04-04T06:01:00Z"));
    let late = server.ferry.check_freshness().await.unwrap();
    assert_eq!(late.len(), 1, "{late:?}");
    assert_eq!(late[0].partition_date.to_string(), "2021-04-04");
    assert!(late[0].announced);
    // Still late a minute on, but announced already.
    clock.advance(Duration::minutes(1));
    let again = server.ferry.check_freshness().await.unwrap();
    assert_eq!(again.len(), 1);
    assert!(!again[0].announced);

    let received = receiver.wait_for_deliveries(1).await;
    assert_eq!(
        received.len(),
        2,
        "one failed attempt, one retry: {received:?}"
    );
    assert_eq!(received[0].answered.as_u16(), 500);
    assert_eq!(
        received[0].body, received[1].body,
        "a retry sends the same event"
    );
    assert_eq!(
        received[0].header("ferry-delivery"),
        received[1].header("ferry-delivery")
    );
    for delivery in &received {
        assert_signed(delivery);
        assert_eq!(delivery.header("ferry-event"), "partition.late");
        assert_eq!(delivery.header("content-type"), "application/json");
    }
    let body = received[1].json();
    assert_eq!(body["type"], "partition.late");
    assert_eq!(body["data"]["dataset"], RAW);
    assert_eq!(body["data"]["owner"], OWNER);
    assert_eq!(body["data"]["partition_date"], "2021-04-04");
    assert_eq!(body["data"]["latest_partition"], "2021-04-03");
    assert_eq!(body["data"]["due_at"], "2021-04-04T06:00:00Z");
    assert!(
        body["id"].is_string() && body["occurred_at"].is_string(),
        "{body}"
    );

    let late_events: Vec<_> = audit_events(server, RAW)
        .await
        .into_iter()
        .filter(|e| e.action == "freshness.late")
        .collect();
    assert_eq!(late_events.len(), 1, "{late_events:?}");
    assert_eq!(late_events[0].principal, "system:freshness");
    assert!(
        late_events[0].detail.contains("2021-04-04"),
        "{late_events:?}"
    );

    // Once the day is live it is no longer late; the next day is due on its own terms.
    let day2 = write_file(server.scratch(), "day2.csv", DAY_2);
    publish(&mut client, RAW, "2021-04-04", &day2)
        .await
        .unwrap();
    assert_eq!(server.ferry.check_freshness().await.unwrap(), []);
    clock.set(at("2021-04-05T06:00:00Z"));
    let next = server.ferry.check_freshness().await.unwrap();
    assert_eq!(next.len(), 1);
    assert!(next[0].announced);
    let received = receiver.wait_for_deliveries(2).await;
    let body = received.last().unwrap().json();
    assert_eq!(body["data"]["partition_date"], "2021-04-05");
    assert_eq!(body["data"]["latest_partition"], "2021-04-04");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_publish_is_announced_without_the_files_values() {
    let receiver = WebhookReceiver::start(&[]).await;
    let clock = ManualClock::at(at("2021-04-03T12:00:00Z"));
    let server = start_with_webhook(&clock, &receiver).await;
    let mut client = server.client().await;
    register_catalog(&mut client).await;
    // A year that is no number: the day is refused.
    let secret_value = "SECRET-VALUE-NOT-A-YEAR";
    let bad = with_bad_year(DAY_1, secret_value);
    let path = write_file(server.scratch(), "bad.csv", &bad);
    let refused = publish(&mut client, RAW, "2021-04-03", &path)
        .await
        .unwrap_err();
    assert_reason(&refused, "PUBLICATION_REJECTED");

    let received = receiver.wait_for_deliveries(1).await;
    assert_eq!(received.len(), 1);
    assert_signed(&received[0]);
    assert_eq!(received[0].header("ferry-event"), "publish.failed");
    let body = received[0].json();
    assert_eq!(body["type"], "publish.failed");
    assert_eq!(body["data"]["dataset"], RAW);
    assert_eq!(body["data"]["owner"], OWNER);
    assert_eq!(body["data"]["partition_date"], "2021-04-03");
    assert_eq!(body["data"]["reason"], "PUBLICATION_REJECTED");
    let ledger = ledger(&mut client, RAW, "2021-04-03").await;
    assert_eq!(body["data"]["publication_id"], ledger[0].id);
    let text = String::from_utf8_lossy(&received[0].body);
    assert!(!text.contains(secret_value), "{text}");
    server.stop().await;
}

/// The catalog contract with a feed from `BUCKET`, looking back one day.
fn contract_with_feed() -> String {
    format!(
        "{CONTRACT_YAML}\nfeed:\n  source_template: \"s3://{BUCKET}/product_catalog_{{date:%Y%m%d}}.csv\"\n  \
         check_every: 15m\n  lookback_days: 1\n"
    )
}

async fn feed_round(server: &TestServer) -> Vec<(String, FeedOutcome)> {
    server
        .ferry
        .run_feeds_once()
        .await
        .unwrap()
        .attempts
        .into_iter()
        .map(|a| (a.partition_date.to_string(), a.outcome))
        .collect()
}

/// The catalog's rows of `day` without the partition column, sorted (a warehouse need not
/// keep the source's order).
async fn day_rows(client: &mut Client, day: &str) -> Vec<Vec<Option<String>>> {
    let (_, rows) = read_rows(client, RAW, day, day, &[]).await.unwrap();
    let mut rows: Vec<_> = rows.into_iter().map(|row| row[..7].to_vec()).collect();
    rows.sort();
    rows
}

fn sorted(mut rows: Vec<Vec<Option<String>>>) -> Vec<Vec<Option<String>>> {
    rows.sort();
    rows
}

async fn list_feeds(client: &mut Client) -> Vec<pb::FeedStatus> {
    client
        .list_feeds(pb::ListFeedsRequest {
            name_prefix: "catalog.".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .feeds
}

async fn a_feed_publishes_each_days_file_when_it_appears_or_changes(
    s3: MotoS3,
    clock: &ManualClock,
    server: &TestServer,
) {
    let mut client = server.client().await;
    s3.create_bucket(BUCKET).await;
    register_yaml(&mut client, &contract_with_feed())
        .await
        .unwrap();

    // No file yet: the check finds nothing and comes back in 15 minutes.
    let round = server.ferry.run_feeds_once().await.unwrap();
    assert_eq!(round.checked, [RAW]);
    assert_eq!(round.attempts, []);
    let feeds = list_feeds(&mut client).await;
    assert_eq!(feeds.len(), 1);
    assert_eq!(feeds[0].dataset, RAW);
    assert_eq!(feeds[0].last_error, "");
    assert_eq!(
        feeds[0].next_check_at.as_ref().unwrap().seconds,
        (clock.now() + Duration::minutes(15)).timestamp()
    );

    // Both days of the window appear; the feed is not due yet, then it is.
    s3.put(BUCKET, "product_catalog_20210404.csv", DAY_2).await;
    s3.put(BUCKET, "product_catalog_20210403.csv", DAY_1).await;
    assert_eq!(feed_round(server).await, []);
    clock.advance(Duration::minutes(15));
    assert_eq!(
        feed_round(server).await,
        [
            ("2021-04-04".into(), FeedOutcome::Published),
            ("2021-04-03".into(), FeedOutcome::Published)
        ]
    );
    assert_eq!(
        day_rows(&mut client, "2021-04-03").await,
        sorted(expected_rows(DAY_1))
    );
    assert_eq!(
        count(&mut client, RAW, "2021-04-04").await,
        expected_rows(DAY_2).len()
    );
    let ledger_before = ledger(&mut client, RAW, "2021-04-04").await;
    assert_eq!(
        ledger_before[0].published_by, OWNER,
        "the feed publishes as the owner"
    );

    // Nothing changed: the next check reads nothing, and the identical file uploaded again
    // is the same object version.
    clock.advance(Duration::minutes(15));
    assert_eq!(feed_round(server).await, []);
    s3.put(BUCKET, "product_catalog_20210404.csv", DAY_2).await;
    clock.advance(Duration::minutes(15));
    assert_eq!(feed_round(server).await, []);

    // A corrected file replaces its day only.
    s3.put(BUCKET, "product_catalog_20210404.csv", DAY_2_CORRECTED)
        .await;
    clock.advance(Duration::minutes(15));
    assert_eq!(
        feed_round(server).await,
        [("2021-04-04".into(), FeedOutcome::Published)]
    );
    assert_eq!(
        day_rows(&mut client, "2021-04-04").await,
        sorted(expected_rows(DAY_2_CORRECTED))
    );

    // A file the contract refuses is recorded as refused, the live day stays, and the same
    // file is not tried again.
    let broken = with_bad_year(DAY_2, "not-a-year");
    s3.put(BUCKET, "product_catalog_20210404.csv", broken).await;
    clock.advance(Duration::minutes(15));
    assert_eq!(
        feed_round(server).await,
        [("2021-04-04".into(), FeedOutcome::Refused)]
    );
    assert_eq!(
        count(&mut client, RAW, "2021-04-04").await,
        expected_rows(DAY_2_CORRECTED).len()
    );
    clock.advance(Duration::minutes(15));
    assert_eq!(feed_round(server).await, []);
    let feeds = list_feeds(&mut client).await;
    let attempts = &feeds[0].recent_attempts;
    assert_eq!(attempts.len(), 4, "{attempts:?}");
    assert_eq!(attempts[0].outcome, "refused");
    assert_eq!(attempts[0].partition_date, "2021-04-04");
    assert!(attempts[0].detail.contains("rejected"), "{attempts:?}");
    assert!(!attempts[0].detail.contains("not-a-year"), "{attempts:?}");
    assert_eq!(
        feeds[0].last_error, "",
        "a refused file is no failure of the feed"
    );

    // The store goes away: the check fails, says why, and comes back after a minute, not 15.
    drop(s3);
    clock.advance(Duration::minutes(15));
    let checked_at = clock.now();
    assert_eq!(feed_round(server).await, []);
    let feeds = list_feeds(&mut client).await;
    assert_eq!(feeds[0].failures, 1);
    assert!(feeds[0].last_error.contains("2021-04-"), "{feeds:?}");
    assert_eq!(
        feeds[0].next_check_at.as_ref().unwrap().seconds,
        (checked_at + Duration::minutes(1)).timestamp()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_feed_publishes_each_days_file_when_it_appears() {
    let s3 = MotoS3::start();
    let clock = ManualClock::at(at("2021-04-04T07:00:00Z"));
    let server = TestServer::start_on(Arc::new(clock.clone()), Some(&s3.endpoint), |_| {}).await;
    a_feed_publishes_each_days_file_when_it_appears_or_changes(s3, &clock, &server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_feed_publishes_each_days_file_when_it_appears_on_bigquery() {
    let s3 = MotoS3::start();
    let bigquery = LocalBigQuery::start();
    let clock = ManualClock::at(at("2021-04-04T07:00:00Z"));
    let server = TestServer::start_on(Arc::new(clock.clone()), Some(&s3.endpoint), |config| {
        bigquery.use_in(config)
    })
    .await;
    a_feed_publishes_each_days_file_when_it_appears_or_changes(s3, &clock, &server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_feed_that_could_read_the_wrong_files_is_refused_at_register() {
    let server = TestServer::start(None).await;
    let mut client = server.client().await;
    for (template, reason, says) in [
        (
            "s3://{date:%Y}-drops/catalog.csv",
            "CONTRACT_INVALID",
            "not in the bucket",
        ),
        (
            "s3://drops/catalog_{date:%m%d}.csv",
            "CONTRACT_INVALID",
            "tell every day apart",
        ),
        ("ftp://drops/catalog_{date}.csv", "CONTRACT_INVALID", "ftp"),
        (
            "http://downloads.example.com/catalog_{date}.csv",
            "SOURCE_NOT_BOUND",
            "not bound",
        ),
        ("file:///etc/{date}.csv", "SOURCE_NOT_ALLOWED", "outside"),
    ] {
        let contract = format!("{CONTRACT_YAML}\nfeed:\n  source_template: \"{template}\"\n");
        let refused = register_yaml(&mut client, &contract).await.unwrap_err();
        assert_reason(&refused, reason);
        assert!(refused.message().contains(says), "{template}: {refused:?}");
    }
    let listed = list_feeds(&mut client).await;
    assert_eq!(listed, []);
    server.stop().await;
}

/// Two replicas on one registry: while one holds a feed's lease the other cannot check it;
/// once the lease runs out (the holder died), the other takes it over.
async fn one_replica_at_a_time_holds_a_feed(url: &str) {
    let one = Registry::connect(url).await.unwrap();
    let other = Registry::connect(url).await.unwrap();
    let t0 = at("2021-04-04T07:00:00Z");
    let lease = |from: DateTime<Utc>| from + Duration::minutes(10);
    assert!(one.claim_feed("catalog.feed", t0, lease(t0)).await.unwrap());
    assert!(
        !other
            .claim_feed("catalog.feed", t0, lease(t0))
            .await
            .unwrap()
    );
    let later = t0 + Duration::minutes(9);
    assert!(one.renew_feed("catalog.feed", lease(later)).await.unwrap());
    assert!(
        !other
            .claim_feed("catalog.feed", later + Duration::minutes(9), lease(later))
            .await
            .unwrap(),
        "the renewed lease still holds"
    );
    let expired = later + Duration::minutes(11);
    assert!(
        other
            .claim_feed("catalog.feed", expired, lease(expired))
            .await
            .unwrap()
    );
    assert!(
        !one.renew_feed("catalog.feed", lease(expired))
            .await
            .unwrap(),
        "the replica that lost its lease learns it"
    );
    let next = expired + Duration::minutes(15);
    other
        .finish_feed_check("catalog.feed", expired, next, "")
        .await
        .unwrap();
    assert!(
        !one.claim_feed("catalog.feed", expired, lease(expired))
            .await
            .unwrap(),
        "not due until its next check"
    );
    assert!(
        one.claim_feed("catalog.feed", next, lease(next))
            .await
            .unwrap()
    );
    let states = other.feed_states().await.unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].last_check_at, Some(expired));
    assert!(states[0].running_on.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn one_replica_at_a_time_holds_a_feed_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    one_replica_at_a_time_holds_a_feed(&Registry::sqlite_url(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_replica_at_a_time_holds_a_feed_on_postgres() {
    let postgres = Postgres::start();
    one_replica_at_a_time_holds_a_feed(&postgres.url).await;
}

/// The server runs freshness checks and feeds on its own, every `scheduler.tick_secs`, on the
/// system clock: today's file in the bucket is published without anyone calling.
#[tokio::test(flavor = "multi_thread")]
async fn the_server_runs_feeds_on_its_own() {
    let s3 = MotoS3::start();
    s3.create_bucket(BUCKET).await;
    let server = TestServer::start_configured(Some(&s3.endpoint), |config| {
        config.scheduler.tick_secs = 1;
    })
    .await;
    let mut client = server.client().await;
    let today = Utc::now().date_naive();
    s3.put(
        BUCKET,
        &format!("product_catalog_{}.csv", today.format("%Y%m%d")),
        DAY_1,
    )
    .await;
    register_yaml(&mut client, &contract_with_feed())
        .await
        .unwrap();
    let day = today.to_string();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let published = ledger(&mut client, RAW, &day).await;
        if published
            .iter()
            .any(|p| p.status == pb::PublicationStatus::Succeeded as i32)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the feed did not publish {day} within a minute: {published:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        count(&mut client, RAW, &day).await,
        expected_rows(DAY_1).len()
    );
    server.stop().await;
}
