//! The attack suite: what an ordinary team token tries against the teams and the server it
//! shares, over the wire against real servers. Each test asserts the refusal and that nothing
//! changed. docs/security.md maps every class to its test here.

#![allow(clippy::unwrap_used)]

use ferry_proto::v1 as pb;
use ferry_server::config::WarehouseBackend;
use ferry_testkit::*;
use tonic::Code;

const DATE: &str = "2021-04-03";
const ATTACKER: &str = CONSUMER_A;

/// A contract of the attacker's own with the catalog's columns, to publish someone else's data
/// into.
fn copy_contract() -> String {
    let yaml = CONTRACT_YAML
        .replace("name: catalog.product_catalog", "name: a.copy")
        .replace("owner: team:catalog", "owner: team:a");
    // The copy has no views: they would live in the catalog team's namespace.
    yaml[..yaml.find("views:").unwrap()].to_owned()
}

/// One text column, no header, a delimiter no text file holds: reads any file whole.
const LEAK_CONTRACT: &str = r#"
name: a.leak
owner: team:a
major_version: 1
columns:
  - name: line
    type: string
partitioning:
  granularity: day
  column: partition_date
source:
  csv:
    delimiter: "\u001f"
    has_header: false
  max_rejected_rows: 1000000
"#;

async fn partitions(client: &mut Client, dataset: &str) -> usize {
    client
        .get_dataset(pb::GetDatasetRequest {
            name: dataset.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .partitions
        .len()
}

async fn audit_denials(server: &TestServer, action: &str) -> Vec<pb::AuditEvent> {
    audit_events(server, "")
        .await
        .into_iter()
        .filter(|e| e.action == action && e.outcome == "denied")
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sources_are_read_only_where_the_owner_team_is_bound() {
    let s3 = MotoS3::start();
    for bucket in ["catalog-drops", "catalog-drops-2"] {
        s3.create_bucket(bucket).await;
        s3.put(bucket, "product_catalog_20210403.csv", DAY_1).await;
    }
    let policies = tempfile::tempdir().unwrap();
    // Only this line binds anyone to anything.
    ferry_server::governance::write_policy_dir(
        policies.path(),
        &["p, team:catalog, source:s3://catalog-drops/*, read_source, never".into()],
    )
    .unwrap();
    let policy_dir = policies.path().to_owned();
    let server = TestServer::start_configured(Some(&s3.endpoint), |c| {
        c.policy_dir = Some(policy_dir);
    })
    .await;
    let mut owner = server.client().await;
    let mut attacker = server.client_as(ATTACKER).await;
    register_catalog(&mut owner).await;
    register_yaml(&mut attacker, &copy_contract())
        .await
        .unwrap();

    // The attacker's own dataset, the catalog team's bucket, the server's credentials: refused.
    let status = publish(
        &mut attacker,
        "a.copy",
        DATE,
        "s3://catalog-drops/product_catalog_20210403.csv",
    )
    .await
    .unwrap_err();
    assert_reason(&status, "SOURCE_NOT_BOUND");
    assert_eq!(
        status.code(),
        Code::PermissionDenied,
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("team:a is not bound"),
        "{}",
        status.message()
    );
    assert_eq!(partitions(&mut attacker, "a.copy").await, 0);
    assert!(ledger(&mut attacker, "a.copy", "").await.is_empty());
    assert_eq!(audit_denials(&server, "read_source").await.len(), 1);

    // The bound team reads its prefix and nothing next to it, even a bucket whose name extends it,
    // and not the server's file roots.
    let published = publish(
        &mut owner,
        RAW,
        DATE,
        "s3://catalog-drops/product_catalog_20210403.csv",
    )
    .await
    .unwrap();
    assert_eq!(
        published.publication.unwrap().rows_accepted,
        expected_rows(DAY_1).len() as u64
    );
    let local = write_file(server.scratch(), "day1.csv", DAY_1);
    for unbound in [
        "s3://catalog-drops-2/product_catalog_20210403.csv".to_owned(),
        "s3://other@catalog-drops-2/product_catalog_20210403.csv".to_owned(),
        local,
    ] {
        let status = publish(&mut owner, RAW, "2021-04-04", &unbound)
            .await
            .unwrap_err();
        assert_reason(&status, "SOURCE_NOT_BOUND");
        assert_eq!(status.code(), Code::PermissionDenied, "{unbound}");
    }
    assert_eq!(partitions(&mut owner, RAW).await, 1);
    assert_eq!(audit_denials(&server, "read_source").await.len(), 4);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_s_own_files_are_never_a_source() {
    let server = TestServer::start(None).await;
    let mut attacker = server.client_as(ATTACKER).await;
    register_yaml(&mut attacker, LEAK_CONTRACT).await.unwrap();
    let scratch = server.scratch();
    std::os::unix::fs::symlink("/etc/passwd", scratch.join("passwd.csv")).unwrap();
    std::os::unix::fs::symlink("/proc/self", scratch.join("self")).unwrap();
    for uri in [
        "file:///proc/self/environ".to_owned(),
        "file:///etc/passwd".to_owned(),
        format!("file://{}/passwd.csv", scratch.display()),
        format!("file://{}/self/environ", scratch.display()),
        format!("file://{}/../../../../etc/passwd", scratch.display()),
        format!(
            "file://{}/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
            scratch.display()
        ),
    ] {
        let status = publish(&mut attacker, "a.leak", DATE, &uri)
            .await
            .unwrap_err();
        assert_reason(&status, "SOURCE_NOT_ALLOWED");
        assert_eq!(status.code(), Code::PermissionDenied, "{uri}");
        assert!(!status.message().contains("root:"), "{}", status.message());
    }
    assert_eq!(partitions(&mut attacker, "a.leak").await, 0);
    assert!(ledger(&mut attacker, "a.leak", "").await.is_empty());
    server.stop().await;

    // Not even a deployment that opens `/` to every team exposes the process itself.
    let server = TestServer::start_configured(None, |c| {
        c.sources.file_roots = vec!["/".into()];
        c.policy_dir = Some(write_test_policies(
            &c.data_dir.with_extension("open-policies"),
            &["p, owner, source:file:///*, read_source, never".into()],
        ));
    })
    .await;
    let mut attacker = server.client_as(ATTACKER).await;
    register_yaml(&mut attacker, LEAK_CONTRACT).await.unwrap();
    for uri in [
        "file:///proc/self/environ",
        "file:///proc/1/environ",
        "file:///sys/kernel/notes",
        "file:///dev/zero",
    ] {
        let status = publish(&mut attacker, "a.leak", DATE, uri)
            .await
            .unwrap_err();
        assert_reason(&status, "SOURCE_NOT_ALLOWED");
        assert_eq!(status.code(), Code::PermissionDenied, "{uri}");
    }
    assert_eq!(partitions(&mut attacker, "a.leak").await, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ledger_shows_sources_only_to_the_owner_team_and_admins() {
    let server = TestServer::start(None).await;
    let mut owner = server.client().await;
    register_catalog(&mut owner).await;
    let source = write_file(server.scratch(), "day1.csv", DAY_1);
    publish(&mut owner, RAW, DATE, &source).await.unwrap();
    owner
        .grant_access(pb::GrantAccessRequest {
            target: TEAM_A.into(),
            grantee: CONSUMER_A.into(),
            role: pb::Role::Reader.into(),
            purpose: "merchandising".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    for principal in [OWNER, ADMIN] {
        let mut client = server.client_as(principal).await;
        let entries = ledger(&mut client, RAW, "").await;
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].source_uri, source, "{principal}");
    }
    let mut consumer = server.client_as(CONSUMER_A).await;
    let entries = ledger(&mut consumer, RAW, "").await;
    assert_eq!(
        entries.len(),
        1,
        "the consumer sees that the day was published"
    );
    assert_eq!(entries[0].source_uri, "");
    assert_eq!(entries[0].rows_accepted, expected_rows(DAY_1).len() as u64);
    let one = consumer
        .get_publication(pb::GetPublicationRequest {
            id: entries[0].id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.source_uri, "");
    server.stop().await;
}

/// A one-column contract; `extra` is appended YAML (retention, views).
fn small_contract(name: &str, owner: &str, extra: &str) -> String {
    format!(
        "name: {name}\nowner: {owner}\nmajor_version: 1\ncolumns:\n  - name: brand\n    type: string\n\
         partitioning:\n  granularity: day\n  column: partition_date\n{extra}"
    )
}

/// What a register must never change in BigQuery: a table's partition expiry, labels,
/// description and schema.
async fn bigquery_table(bigquery: &LocalBigQuery, dataset: &str, table: &str) -> serde_json::Value {
    let table = bigquery
        .get(&format!("datasets/{dataset}/tables/{table}"))
        .await;
    serde_json::json!({
        "timePartitioning": table["timePartitioning"],
        "labels": table["labels"],
        "description": table["description"],
        "schema": table["schema"],
    })
}

async fn namespaces_are_owned_and_refused_registers_change_nothing(backend: WarehouseBackend) {
    let bigquery = (backend == WarehouseBackend::Bigquery).then(LocalBigQuery::start);
    let bigquery_config = bigquery.as_ref().map(LocalBigQuery::config);
    let server = TestServer::start_configured(None, |c| {
        c.warehouse.backend = backend;
        if let Some(config) = bigquery_config {
            c.warehouse.bigquery = config;
        }
    })
    .await;
    let mut owner = server.client().await;
    let mut attacker = server.client_as(ATTACKER).await;
    let mut admin = server.client_as(ADMIN).await;
    register_catalog(&mut owner).await;
    register_yaml(&mut attacker, &small_contract("a.mine", "team:a", ""))
        .await
        .unwrap();
    let tables_before = match &bigquery {
        Some(bq) => vec![
            bigquery_table(bq, "catalog", "product_catalog").await,
            bigquery_table(bq, "catalog", "with_image").await,
            bigquery_table(bq, "a", "mine").await,
        ],
        None => Vec::new(),
    };
    let audit_before = audit_denials(&server, "register").await.len();

    let retention_and_view = |view: &str| {
        format!(
            "retention_days: 1\nviews:\n  - name: {view}\n    filter: brand = 'x'\n    \
             materialization: materialized\n"
        )
    };
    for (yaml, code, says) in [
        // Squatting another team's namespace, under its own name or the victim's.
        (
            small_contract("catalog.evil", "team:a", ""),
            Code::PermissionDenied,
            "namespace catalog belongs to another team",
        ),
        (
            small_contract("catalog.evil", "team:catalog", ""),
            Code::PermissionDenied,
            "may not register",
        ),
        // A view in someone else's namespace, over their raw table's name.
        (
            small_contract(
                "a.copy",
                "team:a",
                &retention_and_view("catalog.product_catalog"),
            ),
            Code::InvalidArgument,
            "must be in the dataset's namespace",
        ),
        // A view over the attacker's own table of another contract: refused before any
        // warehouse change.
        (
            small_contract("a.other", "team:a", &retention_and_view("a.mine")),
            Code::InvalidArgument,
            "already used by another dataset",
        ),
        // Ferry's own datasets.
        (
            small_contract("ferry_staging.x", "team:a", ""),
            Code::InvalidArgument,
            "reserved",
        ),
        (
            small_contract("ferry_consumer_team_3ab.x", "team:a", ""),
            Code::InvalidArgument,
            "reserved",
        ),
    ] {
        let status = register_yaml(&mut attacker, &yaml).await.unwrap_err();
        assert_eq!(status.code(), code, "{yaml}\n{}", status.message());
        let reason = match says {
            "namespace catalog belongs to another team" => "NAMESPACE_OWNED",
            "may not register" => "POLICY_DENIED",
            "already used by another dataset" => "NAME_TAKEN",
            _ => "CONTRACT_INVALID",
        };
        assert_reason(&status, reason);
        assert!(status.message().contains(says), "{}", status.message());
        assert!(
            !status.message().contains("team:catalog") || says == "may not register",
            "the refusal names no other team: {}",
            status.message()
        );
    }

    // Nothing changed: no dataset was created, and every table kept its settings.
    for name in ["catalog.evil", "a.copy", "a.other", "ferry_staging.x"] {
        let status = admin
            .get_dataset(pb::GetDatasetRequest { name: name.into() })
            .await
            .unwrap_err();
        assert_reason(&status, "DATASET_NOT_FOUND");
        assert_eq!(status.code(), Code::NotFound, "{name}");
    }
    if let Some(bq) = &bigquery {
        let tables_after = vec![
            bigquery_table(bq, "catalog", "product_catalog").await,
            bigquery_table(bq, "catalog", "with_image").await,
            bigquery_table(bq, "a", "mine").await,
        ];
        assert_eq!(tables_after, tables_before);
        assert_eq!(
            tables_after[0]["labels"]["ferry-owner"], "team-catalog",
            "{tables_after:#?}"
        );
    }
    assert_eq!(
        audit_denials(&server, "register").await.len(),
        audit_before + 2,
        "both squatting attempts are audited"
    );

    // An admin assigns a name in the namespace to another team.
    register_yaml(&mut admin, &small_contract("catalog.shared", "team:a", ""))
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn namespaces_are_owned_and_refused_registers_change_nothing_embedded() {
    namespaces_are_owned_and_refused_registers_change_nothing(WarehouseBackend::Local).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn namespaces_are_owned_and_refused_registers_change_nothing_on_bigquery() {
    namespaces_are_owned_and_refused_registers_change_nothing(WarehouseBackend::Bigquery).await;
}

/// A customers contract at `major`, its `full_name` classified `classification`, with the view
/// `crm.by_country` or without it.
fn customers(major: u32, classification: &str, with_view: bool) -> String {
    let basis = if classification == "personal" {
        ", legal_basis: contract, purpose: delivery"
    } else {
        ""
    };
    let mut yaml = format!(
        "name: crm.customers\nowner: team:catalog\nmajor_version: {major}\nretention_days: 30\n\
         columns:\n  - {{name: customer_id, type: int64, required: true}}\n  \
         - {{name: full_name, type: string, classification: {classification}{basis}}}\n  \
         - {{name: country, type: string}}\n"
    );
    if with_view {
        yaml.push_str(
            "views:\n  - name: crm.by_country\n    columns: [customer_id, full_name, country]\n",
        );
    }
    yaml
}

const CUSTOMERS: &str = "customer_id,full_name,country\n1,Ada Lovelace,UK\n2,Alan Turing,UK\n";

async fn read_status(client: &mut Client, name: &str) -> Result<Vec<pb::ColumnSchema>, Code> {
    let mut stream = client
        .read_rows(pb::ReadRowsRequest {
            name: name.into(),
            ..Default::default()
        })
        .await
        .map_err(|s| s.code())?
        .into_inner();
    let mut schema = Vec::new();
    while let Some(message) = futures::StreamExt::next(&mut stream).await {
        let message = message.map_err(|s| s.code())?;
        if !message.schema.is_empty() {
            schema = message.schema;
        }
    }
    Ok(schema)
}

/// Every grant the caller may see, revoked and expired ones included.
async fn all_grants(client: &mut Client) -> Vec<pb::Grant> {
    client
        .list_grants(pb::ListGrantsRequest {
            include_inactive: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .grants
}

fn is_masked(schema: &[pb::ColumnSchema], name: &str) -> bool {
    schema.iter().any(|c| c.name == name && c.masked)
}

#[tokio::test(flavor = "multi_thread")]
async fn grants_end_with_their_view_and_declassifying_needs_a_privacy_officer_again() {
    let server = TestServer::start(None).await;
    let mut owner = server.client().await;
    let mut consumer = server.client_as(CONSUMER_A).await;
    register_yaml(&mut owner, &customers(1, "personal", true))
        .await
        .unwrap();
    let source = write_file(server.scratch(), "customers.csv", CUSTOMERS);
    publish(&mut owner, "crm.customers", DATE, &source)
        .await
        .unwrap();
    let granted = owner
        .grant_access(pb::GrantAccessRequest {
            target: "crm.by_country".into(),
            grantee: CONSUMER_A.into(),
            role: pb::Role::Reader.into(),
            purpose: "reporting".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let schema = read_status(&mut consumer, "crm.by_country").await.unwrap();
    assert!(is_masked(&schema, "full_name"), "personal: masked for A");

    // Declassifying the column would show it in clear to a grant approved for masked data:
    // the grant waits for a privacy officer instead.
    register_yaml(&mut owner, &customers(2, "internal", true))
        .await
        .unwrap();
    assert_eq!(
        read_status(&mut consumer, "crm.by_country")
            .await
            .unwrap_err(),
        Code::NotFound
    );
    let listed = all_grants(&mut owner).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, pb::GrantStatus::PendingApproval as i32);
    server
        .client_as(PRIVACY_OFFICER)
        .await
        .approve_grant(pb::ApproveGrantRequest {
            grant_id: granted.id.clone(),
        })
        .await
        .unwrap();
    let schema = read_status(&mut consumer, "crm.by_country").await.unwrap();
    assert!(
        !is_masked(&schema, "full_name"),
        "approved: declassified, so in clear"
    );
    let listed = all_grants(&mut owner).await;
    assert!(
        !listed[0].clear_personal_data,
        "the review did not turn a masked grant into a clear one"
    );

    // The view goes away, and with it the grant; a later view of that name starts with none.
    register_yaml(&mut owner, &customers(3, "internal", false))
        .await
        .unwrap();
    register_yaml(&mut owner, &customers(4, "internal", true))
        .await
        .unwrap();
    assert_eq!(
        read_status(&mut consumer, "crm.by_country")
            .await
            .unwrap_err(),
        Code::NotFound
    );
    let listed = all_grants(&mut owner).await;
    assert_eq!(listed[0].status, pb::GrantStatus::Revoked as i32);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nobody_approves_a_grant_through_a_token_they_minted() {
    let server = TestServer::start(None).await;
    let mut owner = server.client().await;
    let mut admin = server.client_as(ADMIN).await;
    register_yaml(&mut owner, &customers(1, "personal", false))
        .await
        .unwrap();
    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    let pending = admin
        .grant_access(pb::GrantAccessRequest {
            target: "crm.customers".into(),
            grantee: CONSUMER_A.into(),
            role: pb::Role::Reader.into(),
            purpose: "delivery".into(),
            legal_basis: pb::LegalBasis::Contract.into(),
            expires_at: Some(prost_types::Timestamp {
                seconds: expires.timestamp(),
                nanos: 0,
            }),
            clear_personal_data: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pending.status, pb::GrantStatus::PendingApproval as i32);

    // The admin mints itself a privacy officer's token and tries to approve its own grant.
    let minted = admin
        .create_token(pb::CreateTokenRequest {
            principal: PRIVACY_OFFICER.into(),
            description: "not for me".into(),
            expires_at: None,
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let mut shadow = connect_with_token(server.addr, Some(&minted)).await;
    let status = shadow
        .approve_grant(pb::ApproveGrantRequest {
            grant_id: pending.id.clone(),
        })
        .await
        .unwrap_err();
    assert_reason(&status, "GRANT_SELF_APPROVAL");
    assert_eq!(
        status.code(),
        Code::PermissionDenied,
        "{}",
        status.message()
    );
    assert!(status.message().contains("minted"), "{}", status.message());

    // The privacy officer's own credential approves.
    let approved = server
        .client_as(PRIVACY_OFFICER)
        .await
        .approve_grant(pb::ApproveGrantRequest {
            grant_id: pending.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(approved.status, pb::GrantStatus::Active as i32);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_without_line_breaks_fails_at_the_record_limit_and_changes_nothing() {
    let server = TestServer::start_configured(None, |c| {
        c.limits.max_record_bytes = 256 << 10;
    })
    .await;
    let mut owner = server.client().await;
    register_catalog(&mut owner).await;
    let first = write_file(server.scratch(), "day1.csv", DAY_1);
    publish(&mut owner, RAW, DATE, &first).await.unwrap();
    let mut endless = DAY_1.lines().next().unwrap().to_owned();
    endless.push('\n');
    endless.push_str(&"Samsung".repeat(3 << 20));
    let uri = write_file(server.scratch(), "endless.csv", endless);
    let status = publish(&mut owner, RAW, DATE, &uri).await.unwrap_err();
    assert_reason(&status, "SOURCE_MALFORMED");
    assert_eq!(error_metadata(&status)["line"], "2");
    assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    assert!(
        status
            .message()
            .contains("line 2: a record is longer than 262144 bytes"),
        "{}",
        status.message()
    );
    assert!(!status.message().contains("SamsungSamsung"));
    assert_eq!(
        count(&mut owner, RAW, DATE).await,
        expected_rows(DAY_1).len()
    );
    server.stop().await;
}

/// A plain HTTP file server on 127.0.0.1: `/day1.csv` serves DAY_1; `/hop.csv` redirects to it
/// on the same origin; `/elsewhere.csv` redirects to it under another host name.
async fn start_http_source() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let response = match path.as_str() {
                    "/day1.csv" => format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: text/csv\r\n\
                         last-modified: Wed, 21 Oct 2015 07:28:00 GMT\r\netag: \"1\"\r\n\
                         connection: close\r\n\r\n{DAY_1}",
                        DAY_1.len()
                    ),
                    "/hop.csv" => format!(
                        "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{port}/day1.csv\r\n\
                         content-length: 0\r\nconnection: close\r\n\r\n"
                    ),
                    "/elsewhere.csv" => format!(
                        "HTTP/1.1 302 Found\r\nlocation: http://localhost:{port}/day1.csv\r\n\
                         content-length: 0\r\nconnection: close\r\n\r\n"
                    ),
                    _ => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_owned(),
                };
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn web_sources_never_reach_internal_addresses_nor_follow_redirects_elsewhere() {
    let port = start_http_source().await;
    let url = |host: &str, path: &str| format!("http://{host}:{port}{path}");

    // By default nothing internal is reachable, by address or by name.
    let server = TestServer::start(None).await;
    let mut owner = server.client().await;
    register_catalog(&mut owner).await;
    for (uri, says) in [
        (url("127.0.0.1", "/day1.csv"), "internal address"),
        (
            url("localhost", "/day1.csv"),
            "resolves only to internal addresses",
        ),
        (url("[::1]", "/day1.csv"), "internal address"),
    ] {
        let status = publish(&mut owner, RAW, DATE, &uri).await.unwrap_err();
        assert_reason(&status, "SOURCE_NOT_ALLOWED");
        assert_eq!(status.code(), Code::PermissionDenied, "{uri}: {status:?}");
        assert!(
            status.message().contains(says),
            "{uri}: {}",
            status.message()
        );
    }
    assert_eq!(partitions(&mut owner, RAW).await, 0);
    server.stop().await;

    // An allow-listed internal mirror serves, and redirects only within itself.
    let server = TestServer::start_configured(None, |c| {
        c.sources.allowed_internal_hosts = vec!["127.0.0.1".into()];
    })
    .await;
    let mut owner = server.client().await;
    register_catalog(&mut owner).await;
    publish(&mut owner, RAW, DATE, &url("127.0.0.1", "/day1.csv"))
        .await
        .unwrap();
    publish(&mut owner, RAW, "2021-04-04", &url("127.0.0.1", "/hop.csv"))
        .await
        .unwrap();
    let status = publish(
        &mut owner,
        RAW,
        "2021-04-05",
        &url("127.0.0.1", "/elsewhere.csv"),
    )
    .await
    .unwrap_err();
    assert_reason(&status, "SOURCE_NOT_ALLOWED");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("redirects to another host"),
        "{}",
        status.message()
    );
    assert_eq!(partitions(&mut owner, RAW).await, 2);
    server.stop().await;
}

const PEOPLE: &str = r#"
name: crm.people
owner: team:catalog
major_version: 1
retention_days: 30
columns:
  - {name: id, type: int64, required: true}
  - {name: email, type: string, classification: personal, pii_handling: pseudonymize, legal_basis: contract, purpose: follow-up}
  - {name: phone, type: string, classification: personal, pii_handling: drop}
  - {name: age, type: int64, classification: personal, legal_basis: contract, purpose: age checks}
partitioning:
  granularity: day
  column: partition_date
source:
  max_rejected_rows: 10
"#;

#[tokio::test(flavor = "multi_thread")]
async fn rejected_rows_keep_no_personal_value_and_expire_with_the_data() {
    let server = TestServer::start(None).await;
    let mut owner = server.client().await;
    register_yaml(&mut owner, PEOPLE).await.unwrap();
    let text = "id,email,phone,age\n\
                1,ada@example.eu,+44 1111,36\n\
                two,alan@example.eu,+44 2222,41\n\
                3,grace@example.us,+1 3333,eighty-five\n\
                4,short@example.eu,+1 4444\n";
    let uri = write_file(server.scratch(), "people.csv", text);
    let publication = publish(&mut owner, "crm.people", DATE, &uri)
        .await
        .unwrap()
        .publication
        .unwrap();
    assert_eq!(
        (publication.rows_accepted, publication.rows_rejected),
        (1, 3)
    );
    // The row error names the column and the reason, never a personal value.
    let errors = format!("{:?}", publication.row_errors);
    assert!(errors.contains("column: \"age\""), "{errors}");
    assert!(!errors.contains("eighty-five"), "{errors}");
    // The quarantine applies the contract's handling: no e-mail, no phone in clear.
    let path = publication.quarantine_uri.strip_prefix("file://").unwrap();
    let kept = std::fs::read_to_string(path).unwrap();
    for personal in [
        "alan@example.eu",
        "grace@example.us",
        "short@example.eu",
        "+44 2222",
        "+1 3333",
        "+1 4444",
    ] {
        assert!(!kept.contains(personal), "{personal} in {kept}");
    }
    assert!(kept.contains("two"), "non-personal fields are kept: {kept}");
    assert!(kept.contains("fields withheld"), "{kept}");

    // Retention removes the quarantined rows with the partition.
    let later =
        chrono::NaiveDate::parse_from_str(DATE, "%Y-%m-%d").unwrap() + chrono::Duration::days(31);
    server.ferry.enforce_retention(later).await.unwrap();
    assert!(
        !std::path::Path::new(path).exists(),
        "{path} outlived the retention"
    );
    server.stop().await;
}

/// Two teams register their first datasets in the same free namespaces at the same moment,
/// through `servers` (one, or two replicas sharing a registry): each namespace goes to exactly
/// one of them, and the other is refused as for any owned namespace.
async fn racing_teams_never_share_a_namespace(servers: [&TestServer; 2]) {
    let mut first = servers[0].client_as(CONSUMER_A).await;
    let mut second = servers[1].client_as(CONSUMER_B).await;
    for round in 0..12 {
        let namespace = format!("contested{round}");
        let a = small_contract(&format!("{namespace}.from_a"), CONSUMER_A, "");
        let b = small_contract(&format!("{namespace}.from_b"), CONSUMER_B, "");
        let (a, b) = tokio::join!(
            register_yaml(&mut first, &a),
            register_yaml(&mut second, &b)
        );
        let refused: Vec<_> = [&a, &b]
            .into_iter()
            .filter_map(|r| r.as_ref().err())
            .collect();
        assert_eq!(refused.len(), 1, "{namespace}: {a:?} / {b:?}");
        assert_reason(refused[0], "NAMESPACE_OWNED");
        assert_eq!(
            refused[0].code(),
            tonic::Code::PermissionDenied,
            "{:?}",
            refused[0]
        );
        assert!(
            refused[0].message().contains("belongs to another team"),
            "{:?}",
            refused[0]
        );
        // The loser's name was not recorded either.
        let loser = if a.is_err() { "from_a" } else { "from_b" };
        let listed = servers[0]
            .ferry
            .registry()
            .dataset(&format!("{namespace}.{loser}"))
            .await
            .unwrap();
        assert!(listed.is_none(), "{namespace}.{loser} was registered");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_teams_never_share_a_namespace_embedded() {
    let server = TestServer::start(None).await;
    racing_teams_never_share_a_namespace([&server, &server]).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_teams_never_share_a_namespace_across_replicas() {
    let postgres = Postgres::start();
    let one = TestServer::start_with(None, Some(&postgres.url)).await;
    let two = TestServer::start_with(None, Some(&postgres.url)).await;
    racing_teams_never_share_a_namespace([&one, &two]).await;
    one.stop().await;
    two.stop().await;
}
