//! Dataset `access` lists are shared between Ferry's replicas and human admins. Ferry edits them
//! under the dataset's etag, so an edit that raced another one is re-applied to the new list
//! instead of overwriting it.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use ferry_server::warehouse::BigQueryApi;
use ferry_testkit::{BIGQUERY_PROJECT, LocalBigQuery};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn an_access_edit_that_lost_a_race_rereads_and_keeps_both_edits() {
    let emulator = LocalBigQuery::start();
    let api = BigQueryApi::connect(emulator.config()).await.unwrap();
    api.ensure_dataset("shared", "a dataset two replicas edit", None)
        .await
        .unwrap();
    let theirs =
        json!({"view": {"projectId": BIGQUERY_PROJECT, "datasetId": "replica_b", "tableId": "v"}});
    let ours =
        json!({"view": {"projectId": BIGQUERY_PROJECT, "datasetId": "replica_a", "tableId": "v"}});
    let dataset_url = format!(
        "{}/bigquery/v2/projects/{BIGQUERY_PROJECT}/datasets/shared",
        emulator.endpoint
    );
    let reads = AtomicUsize::new(0);
    api.edit_dataset_access("shared", |access| {
        if reads.fetch_add(1, Ordering::SeqCst) == 0 {
            // Another replica writes between our read and our write (a plain blocking call: the
            // edit runs synchronously, exactly in that window).
            let mut their_list = access.clone();
            their_list.push(theirs.clone());
            let written = Command::new("curl")
                .args(["-sf", "-X", "PATCH", &dataset_url])
                .args(["-H", "content-type: application/json", "-d"])
                .arg(json!({ "access": their_list }).to_string())
                .output()
                .unwrap();
            assert!(written.status.success(), "{written:?}");
        }
        access.push(ours.clone());
        true
    })
    .await
    .unwrap();
    assert_eq!(
        reads.load(Ordering::SeqCst),
        2,
        "the stale write got 412 and the edit ran again on a fresh read"
    );
    let access = emulator.get("datasets/shared").await["access"].clone();
    let access = access.as_array().unwrap();
    assert!(
        access.contains(&theirs),
        "the other replica's entry survived: {access:?}"
    );
    assert!(access.contains(&ours), "ours landed too: {access:?}");
}
