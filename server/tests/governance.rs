//! Governance over the wire: authentication, the role x RPC allow/deny matrix, grants with
//! approval, expiry and revocation, masking and pseudonymization, retention, policy reloads and
//! the audit trail of each.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ferry_proto::v1 as pb;
use ferry_testkit::*;
use futures::StreamExt;
use tonic::Code;

const CUSTOMERS_YAML: &str = r#"
name: crm.customers
owner: team:catalog
description: Customers, for the governance tests.
retention_days: 30
columns:
  - {name: customer_id, type: int64, required: true}
  - {name: email, type: string, classification: personal, pii_handling: pseudonymize, legal_basis: contract, purpose: order follow-up}
  - {name: full_name, type: string, classification: personal, legal_basis: contract, purpose: delivery}
  - {name: age, type: int64, classification: personal, legal_basis: contract, purpose: age-restricted goods}
  - {name: health_note, type: string, classification: sensitive, legal_basis: consent, purpose: accessible delivery}
  - {name: phone, type: string, classification: personal, pii_handling: drop}
  - {name: country, type: string}
views:
  - name: crm.customers_by_country
    columns: [customer_id, full_name, country]
"#;

const CUSTOMERS_CSV: &str = "customer_id,email,full_name,age,health_note,phone,country\n\
1,ada@example.eu,Ada Lovelace,36,wheelchair,+44 1,UK\n\
2,alan@example.eu,Alan Turing,41,,+44 2,UK\n\
3,grace@example.us,,85,hearing aid,+1 3,US\n";

const DAY: &str = "2021-04-03";

fn code<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// The schema and rows of a read, as text.
async fn read_all(
    client: &mut Client,
    name: &str,
) -> Result<(Vec<pb::ColumnSchema>, Vec<Vec<Option<String>>>), tonic::Status> {
    let mut stream = client
        .read_rows(pb::ReadRowsRequest {
            name: name.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut schema = Vec::new();
    let mut rows = Vec::new();
    while let Some(message) = stream.next().await {
        let message = message?;
        if !message.schema.is_empty() {
            schema = message.schema;
        }
        rows.extend(
            message
                .rows
                .iter()
                .map(|r| r.values.iter().map(pb::Value::to_text).collect()),
        );
    }
    Ok((schema, rows))
}

fn column<'a>(
    schema: &[pb::ColumnSchema],
    rows: &'a [Vec<Option<String>>],
    name: &str,
) -> Vec<Option<&'a str>> {
    let index = schema.iter().position(|c| c.name == name).unwrap();
    rows.iter().map(|r| r[index].as_deref()).collect()
}

fn masked(schema: &[pb::ColumnSchema], name: &str) -> bool {
    schema.iter().find(|c| c.name == name).unwrap().masked
}

async fn grant(
    client: &mut Client,
    target: &str,
    grantee: &str,
    adjust: impl FnOnce(&mut pb::GrantAccessRequest),
) -> Result<pb::Grant, tonic::Status> {
    let mut request = pb::GrantAccessRequest {
        target: target.into(),
        grantee: grantee.into(),
        role: pb::Role::Reader.into(),
        ..Default::default()
    };
    adjust(&mut request);
    client
        .grant_access(request)
        .await
        .map(tonic::Response::into_inner)
}

fn in_seconds(seconds: i64) -> prost_types::Timestamp {
    let t = chrono::Utc::now() + chrono::Duration::seconds(seconds);
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    }
}

/// Asserts that the audit log of `target` holds each "principal action outcome" line.
async fn assert_audited(server: &TestServer, target: &str, expected: &[&str]) {
    let trail: Vec<String> = audit_events(server, target)
        .await
        .iter()
        .map(|e| format!("{} {} {}", e.principal, e.action, e.outcome))
        .collect();
    for line in expected {
        assert!(trail.iter().any(|t| t == line), "{line} not in {trail:?}");
    }
}

/// The catalog registered and one day published by its owner, and team A granted its view.
async fn catalog_server() -> (TestServer, pb::Grant) {
    let server = TestServer::start(None).await;
    let mut owner = server.client().await;
    register_catalog(&mut owner).await;
    let source = write_file(server.scratch(), "day1.csv", DAY_1);
    publish(&mut owner, RAW, DAY, &source).await.unwrap();
    let granted = grant(&mut owner, TEAM_A, CONSUMER_A, |_| {}).await.unwrap();
    (server, granted)
}

#[tokio::test(flavor = "multi_thread")]
async fn unauthenticated_and_forged_tokens_are_refused_and_counted_not_audited() {
    let server = TestServer::start(None).await;
    let mut anonymous = connect_with_token(server.addr, None).await;
    let status = anonymous
        .list_datasets(pb::ListDatasetsRequest::default())
        .await
        .unwrap_err();
    assert_reason(&status, "UNAUTHENTICATED");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("Bearer"), "{}", status.message());

    let forged = "fry_forgedforgedforgedforgedforgedforgedforg";
    let mut forger = connect_with_token(server.addr, Some(forged)).await;
    let status = forger
        .get_dataset(pb::GetDatasetRequest { name: RAW.into() })
        .await
        .unwrap_err();
    assert_reason(&status, "UNAUTHENTICATED");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(!status.message().contains(forged));

    // A revoked token stops working at once.
    let mut admin = server.client_as(ADMIN).await;
    let created = admin
        .create_token(pb::CreateTokenRequest {
            principal: "team:short_lived".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut holder = connect_with_token(server.addr, Some(&created.secret)).await;
    holder
        .list_datasets(pb::ListDatasetsRequest::default())
        .await
        .unwrap();
    let listed = admin
        .list_tokens(pb::ListTokensRequest {})
        .await
        .unwrap()
        .into_inner();
    let debug = format!("{listed:?}");
    assert!(
        !debug.contains(&created.secret),
        "tokens are listed without secrets"
    );
    admin
        .revoke_token(pb::RevokeTokenRequest {
            id: created.token.unwrap().id,
        })
        .await
        .unwrap();
    assert_eq!(
        code(
            holder
                .list_datasets(pb::ListDatasetsRequest::default())
                .await
        ),
        Code::Unauthenticated
    );

    let events = audit_events(&server, "").await;
    let denied_logins = events
        .iter()
        .filter(|e| e.action == "authenticate" && e.outcome == "denied")
        .count();
    // Counted in ferry.authz.denials, not audited one row each: an anonymous caller could
    // otherwise fill the audit log.
    assert_eq!(denied_logins, 0, "{events:#?}");
    assert!(
        events
            .iter()
            .any(|e| e.action == "token.create" && e.target == "team:short_lived")
    );
    assert!(events.iter().any(|e| e.action == "token.revoke"));
    assert!(
        !format!("{events:?}").contains(forged) && !format!("{events:?}").contains(&created.secret),
        "no token reaches the audit log"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_role_is_allowed_or_denied_each_rpc_as_the_policy_says() {
    let (server, granted) = catalog_server().await;
    let source = write_file(server.scratch(), "again.csv", DAY_1);
    let roles = [OWNER, CONSUMER_A, CONSUMER_B, PRIVACY_OFFICER, ADMIN];
    // Expected outcome per role, in the order of `roles`.
    const OK: Code = Code::Ok;
    const NO: Code = Code::PermissionDenied;
    const HID: Code = Code::NotFound;
    let mut table: Vec<(&str, [Code; 5])> = Vec::new();
    let mut clients = Vec::new();
    for role in roles {
        clients.push(server.client_as(role).await);
    }
    let mut row = |name: &'static str, codes: Vec<Code>| {
        table.push((name, codes.try_into().unwrap()));
    };

    let mut got = Vec::new();
    for c in &mut clients {
        got.push(code(register_yaml(c, CONTRACT_YAML).await));
    }
    row("RegisterDataset", got);
    let mut got = Vec::new();
    for c in &mut clients {
        got.push(code(
            c.get_dataset(pb::GetDatasetRequest { name: RAW.into() })
                .await,
        ));
    }
    row("GetDataset", got);
    let mut got = Vec::new();
    for c in &mut clients {
        got.push(code(publish(c, RAW, DAY, &source).await));
    }
    row("PublishPartition", got);
    let mut got = Vec::new();
    for c in &mut clients {
        got.push(code(
            c.list_publications(pb::ListPublicationsRequest {
                dataset: RAW.into(),
                ..Default::default()
            })
            .await,
        ));
    }
    row("ListPublications", got);
    for table_name in [RAW, TEAM_A, TEAM_B] {
        let mut got = Vec::new();
        for c in &mut clients {
            got.push(code(read_all(c, table_name).await));
        }
        row(
            match table_name {
                RAW => "ReadRows raw",
                TEAM_A => "ReadRows team A view",
                _ => "ReadRows team B view",
            },
            got,
        );
    }
    let mut got = Vec::new();
    for c in &mut clients {
        got.push(code(grant(c, TEAM_B, "team:someone", |_| {}).await));
    }
    row("GrantAccess", got);
    let mut got = Vec::new();
    for c in &mut clients {
        got.push(code(
            c.approve_grant(pb::ApproveGrantRequest {
                grant_id: granted.id.clone(),
            })
            .await,
        ));
    }
    // The privacy officer may approve, but this grant needs no approval.
    row("ApproveGrant", got);
    let mut got = Vec::new();
    for c in &mut clients {
        got.push(code(c.list_tokens(pb::ListTokensRequest {}).await));
    }
    row("ListTokens", got);
    let mut got = Vec::new();
    for c in &mut clients {
        got.push(code(
            c.create_token(pb::CreateTokenRequest {
                principal: "team:new".into(),
                ..Default::default()
            })
            .await,
        ));
    }
    row("CreateToken", got);
    let mut got = Vec::new();
    for c in &mut clients {
        got.push(code(
            c.list_audit_events(pb::ListAuditEventsRequest::default())
                .await,
        ));
    }
    row("ListAuditEvents", got);
    let mut got = Vec::new();
    for c in &mut clients {
        got.push(code(c.reload_policies(pb::ReloadPoliciesRequest {}).await));
    }
    row("ReloadPolicies", got);
    let mut got = Vec::new();
    for c in &mut clients {
        got.push(code(
            c.revoke_access(pb::RevokeAccessRequest {
                grant_id: granted.id.clone(),
            })
            .await,
        ));
    }
    row("RevokeAccess", got);

    let expected: Vec<(&str, [Code; 5])> = vec![
        // owner, team A, team B, privacy officer, admin
        // Team B may not describe the dataset, so it is answered as if it did not exist.
        ("RegisterDataset", [OK, NO, NO, NO, OK]),
        ("GetDataset", [OK, OK, HID, OK, OK]),
        ("PublishPartition", [OK, NO, HID, NO, NO]),
        ("ListPublications", [OK, OK, HID, OK, OK]),
        ("ReadRows raw", [OK, NO, HID, NO, OK]),
        ("ReadRows team A view", [OK, OK, HID, NO, OK]),
        ("ReadRows team B view", [OK, NO, HID, NO, OK]),
        ("GrantAccess", [OK, NO, HID, NO, OK]),
        ("ApproveGrant", [NO, NO, NO, Code::FailedPrecondition, NO]),
        ("ListTokens", [NO, NO, NO, NO, OK]),
        ("CreateToken", [NO, NO, NO, NO, OK]),
        ("ListAuditEvents", [NO, NO, NO, OK, OK]),
        ("ReloadPolicies", [NO, NO, NO, NO, OK]),
        // The owner revokes first, so team A no longer sees the dataset; the admin's revoke
        // of a revoked grant is a no-op.
        ("RevokeAccess", [OK, HID, HID, NO, OK]),
    ];
    assert_eq!(table, expected);

    // Lists filter instead of failing: team B sees no dataset and no grant.
    let listed = |c: &mut Client| {
        let mut c = c.clone();
        async move {
            c.list_datasets(pb::ListDatasetsRequest::default())
                .await
                .unwrap()
                .into_inner()
                .datasets
                .len()
        }
    };
    assert_eq!(listed(&mut clients[0]).await, 1);
    assert_eq!(listed(&mut clients[2]).await, 0);
    let b_grants = clients[2]
        .list_grants(pb::ListGrantsRequest {
            include_inactive: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .grants;
    assert!(b_grants.is_empty(), "{b_grants:?}");

    // Every denial is in the audit log, under the caller that was denied.
    let denials: Vec<_> = audit_events(&server, "")
        .await
        .into_iter()
        .filter(|e| e.outcome == "denied")
        .collect();
    let expected_denials = expected
        .iter()
        .flat_map(|(_, codes)| codes.iter())
        .filter(|c| **c == NO || **c == HID)
        .count();
    assert_eq!(denials.len(), expected_denials, "{denials:#?}");
    // A hidden name is audited as the describe it was refused, under what the caller asked for.
    assert!(
        denials
            .iter()
            .any(|e| e.principal == CONSUMER_B && e.action == "describe" && e.target == TEAM_B)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn denials_name_nothing_the_caller_did_not_ask_for() {
    let (server, _) = catalog_server().await;
    let mut team_b = server.client_as(CONSUMER_B).await;
    // Team B may not see the catalog: its views answer exactly as a name that does not exist.
    let status = read_all(&mut team_b, TEAM_A).await.unwrap_err();
    assert_reason(&status, "DATASET_OR_VIEW_NOT_FOUND");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        status.message(),
        "dataset or view catalog.with_image not found"
    );
    let status = read_all(&mut team_b, "catalog.nope").await.unwrap_err();
    assert_reason(&status, "DATASET_OR_VIEW_NOT_FOUND");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "dataset or view catalog.nope not found");
    // Team A sees the dataset through its grant, so a view it was not granted is a denial.
    let mut team_a = server.client_as(CONSUMER_A).await;
    let status = read_all(&mut team_a, TEAM_B).await.unwrap_err();
    assert_reason(&status, "POLICY_DENIED");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "permission denied: team:a may not read catalog.samsung_after_2000_without_image"
    );
    for secret in server.tokens.values() {
        assert!(!status.message().contains(secret.as_str()));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn grants_expire_by_themselves_and_revocation_is_immediate() {
    let (server, granted) = catalog_server().await;
    let mut owner = server.client().await;
    let mut team_a = server.client_as(CONSUMER_A).await;
    let mut team_b = server.client_as(CONSUMER_B).await;
    // Without a grant team B may not even see the dataset.
    assert_eq!(code(read_all(&mut team_b, TEAM_B).await), Code::NotFound);
    let expiring = grant(&mut owner, TEAM_B, CONSUMER_B, |g| {
        g.expires_at = Some(in_seconds(3));
        g.purpose = "assortment review".into();
    })
    .await
    .unwrap();
    assert_eq!(expiring.status, pb::GrantStatus::Active as i32);
    let (_, rows) = read_all(&mut team_b, TEAM_B).await.unwrap();
    assert_eq!(rows.len(), team_counts(DAY_1).1);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        code(read_all(&mut team_b, TEAM_B).await),
        Code::NotFound,
        "no job ran, yet the grant is over"
    );
    let listed = owner
        .list_grants(pb::ListGrantsRequest {
            target: TEAM_B.into(),
            include_inactive: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .grants;
    assert_eq!(listed[0].status, pb::GrantStatus::Expired as i32);

    let (_, rows) = read_all(&mut team_a, TEAM_A).await.unwrap();
    assert_eq!(rows.len(), team_counts(DAY_1).0);
    let revoked = owner
        .revoke_access(pb::RevokeAccessRequest {
            grant_id: granted.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revoked.status, pb::GrantStatus::Revoked as i32);
    assert_eq!(revoked.revoked_by, OWNER);
    assert_eq!(code(read_all(&mut team_a, TEAM_A).await), Code::NotFound);
    assert_audited(
        &server,
        TEAM_A,
        &[
            "team:catalog grant allowed",
            "team:catalog revoke allowed",
            // Without its grant, team A may not even see the view: the refusal is audited as a
            // denied describe of what it asked for.
            "team:a describe denied",
        ],
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn personal_data_is_pseudonymized_dropped_and_masked_until_approved() {
    let server = TestServer::start(None).await;
    let mut owner = server.client().await;
    register_yaml(&mut owner, CUSTOMERS_YAML).await.unwrap();
    let source = write_file(server.scratch(), "customers.csv", CUSTOMERS_CSV);
    publish(&mut owner, "crm.customers", DAY, &source)
        .await
        .unwrap();

    // The owner sees everything it stored in clear; the phone was never stored; e-mails are
    // keyed HMAC-SHA-256 pseudonyms.
    let (schema, rows) = read_all(&mut owner, "crm.customers").await.unwrap();
    assert!(!schema.iter().any(|c| c.name == "phone"));
    assert_eq!(
        column(&schema, &rows, "full_name"),
        [Some("Ada Lovelace"), Some("Alan Turing"), None]
    );
    // The dataset's own key: HKDF-SHA-256 of the master key, salted for Ferry, with the
    // dataset's name as info (computed here with ring, independently of Ferry's code).
    let key = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"ferry pseudonymization v1")
        .extract(PSEUDONYMIZATION_KEY.as_bytes())
        .expand(&[b"crm.customers"], ring::hmac::HMAC_SHA256)
        .map(ring::hmac::Key::from)
        .unwrap();
    let expected_email = hex_encode(ring::hmac::sign(&key, b"ada@example.eu").as_ref());
    assert_eq!(
        column(&schema, &rows, "email")[0],
        Some(expected_email.as_str())
    );
    assert!(!format!("{rows:?}").contains("@example"));

    // A consumer without a grant in clear sees personal and sensitive columns masked.
    grant(&mut owner, "crm.customers", CONSUMER_A, |_| {})
        .await
        .unwrap();
    let mut team_a = server.client_as(CONSUMER_A).await;
    let (schema, rows) = read_all(&mut team_a, "crm.customers").await.unwrap();
    assert_eq!(
        column(&schema, &rows, "full_name"),
        [Some("***"), Some("***"), None]
    );
    assert_eq!(column(&schema, &rows, "age"), [None, None, None]);
    assert_eq!(
        column(&schema, &rows, "health_note"),
        [Some("***"), None, Some("***")]
    );
    assert_eq!(
        column(&schema, &rows, "country"),
        [Some("UK"), Some("UK"), Some("US")]
    );
    assert_eq!(
        column(&schema, &rows, "email")[0],
        Some(expected_email.as_str())
    );
    assert!(masked(&schema, "full_name") && masked(&schema, "health_note"));
    assert!(!masked(&schema, "email") && !masked(&schema, "country"));

    // Personal data in clear needs purpose, legal basis and expiry, then an approval.
    let status = grant(&mut owner, "crm.customers", CONSUMER_A, |g| {
        g.clear_personal_data = true;
        g.purpose = "delivery".into();
    })
    .await
    .unwrap_err();
    assert_reason(&status, "INVALID_FIELD");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("a legal basis") && status.message().contains("an expiry"),
        "{}",
        status.message()
    );
    let pending = grant(&mut owner, "crm.customers", CONSUMER_A, |g| {
        g.clear_personal_data = true;
        g.purpose = "delivery".into();
        g.legal_basis = pb::LegalBasis::Contract.into();
        g.expires_at = Some(in_seconds(3600));
    })
    .await
    .unwrap();
    assert_eq!(pending.status, pb::GrantStatus::PendingApproval as i32);
    let (schema, _) = read_all(&mut team_a, "crm.customers").await.unwrap();
    assert!(
        masked(&schema, "full_name"),
        "pending grants change nothing"
    );

    let approve = |principal: &'static str| {
        let id = pending.id.clone();
        let server = &server;
        async move {
            server
                .client_as(principal)
                .await
                .approve_grant(pb::ApproveGrantRequest { grant_id: id })
                .await
        }
    };
    assert_eq!(code(approve(ADMIN).await), Code::PermissionDenied);
    assert_eq!(code(approve(OWNER).await), Code::PermissionDenied);
    let approved = approve(PRIVACY_OFFICER).await.unwrap().into_inner();
    assert_eq!(approved.status, pb::GrantStatus::Active as i32);
    assert_eq!(approved.approved_by, PRIVACY_OFFICER);

    let (schema, rows) = read_all(&mut team_a, "crm.customers").await.unwrap();
    assert_eq!(
        column(&schema, &rows, "full_name"),
        [Some("Ada Lovelace"), Some("Alan Turing"), None]
    );
    assert_eq!(
        column(&schema, &rows, "age"),
        [Some("36"), Some("41"), Some("85")]
    );
    assert_eq!(
        column(&schema, &rows, "health_note"),
        [Some("***"), None, Some("***")],
        "sensitive columns are never in clear for a consumer"
    );

    // Views inherit the classification of their columns.
    grant(&mut owner, "crm.customers_by_country", CONSUMER_B, |_| {})
        .await
        .unwrap();
    let mut team_b = server.client_as(CONSUMER_B).await;
    let (schema, rows) = read_all(&mut team_b, "crm.customers_by_country")
        .await
        .unwrap();
    assert!(masked(&schema, "full_name"));
    assert_eq!(
        schema
            .iter()
            .find(|c| c.name == "full_name")
            .unwrap()
            .classification,
        pb::Classification::Personal as i32
    );
    assert_eq!(
        column(&schema, &rows, "full_name"),
        [Some("***"), Some("***"), None]
    );

    assert_audited(
        &server,
        "crm.customers",
        &[
            "privacy:dpo approve allowed",
            "team:catalog register allowed",
            "team:catalog publish allowed",
        ],
    )
    .await;
    server.stop().await;
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn pseudonyms_differ_across_keys_and_no_key_means_no_publish() {
    let first = TestServer::start(None).await;
    let second = TestServer::start_configured(None, |c| {
        c.privacy.pseudonymization_key = Some(ferry_server::config::Secret::new(
            "another-key-another-key-another-key-0",
        ))
    })
    .await;
    let mut emails = Vec::new();
    for server in [&first, &second] {
        let mut owner = server.client().await;
        register_yaml(&mut owner, CUSTOMERS_YAML).await.unwrap();
        let source = write_file(server.scratch(), "customers.csv", CUSTOMERS_CSV);
        publish(&mut owner, "crm.customers", DAY, &source)
            .await
            .unwrap();
        let (schema, rows) = read_all(&mut owner, "crm.customers").await.unwrap();
        emails.push(
            column(&schema, &rows, "email")
                .into_iter()
                .map(|e| e.unwrap().to_owned())
                .collect::<Vec<_>>(),
        );
    }
    assert_ne!(emails[0], emails[1]);
    assert!(emails.iter().flatten().all(|e| e.len() == 64));
    first.stop().await;
    second.stop().await;

    let keyless =
        TestServer::start_configured(None, |c| c.privacy.pseudonymization_key = None).await;
    let status = register_yaml(&mut keyless.client().await, CUSTOMERS_YAML)
        .await
        .unwrap_err();
    assert_reason(&status, "PSEUDONYMIZATION_KEY_MISSING");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("pseudonymization key"),
        "{}",
        status.message()
    );
    keyless.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn personal_columns_without_a_legal_basis_are_refused_at_registration() {
    let server = TestServer::start(None).await;
    let yaml = CUSTOMERS_YAML.replace(", legal_basis: contract, purpose: delivery", "");
    let status = register_yaml(&mut server.client().await, &yaml)
        .await
        .unwrap_err();
    assert_reason(&status, "CONTRACT_INVALID");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("\"full_name\" is personal data and needs legal_basis")
            && status.message().contains("purpose"),
        "{}",
        status.message()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_removes_expired_partitions_and_logs_each() {
    let server = TestServer::start(None).await;
    let mut owner = server.client().await;
    register_yaml(&mut owner, CUSTOMERS_YAML).await.unwrap();
    let source = write_file(server.scratch(), "customers.csv", CUSTOMERS_CSV);
    for day in ["2021-04-03", "2021-04-04"] {
        publish(&mut owner, "crm.customers", day, &source)
            .await
            .unwrap();
    }
    // 30 days after 2021-04-04, 2021-04-03 is past the contract's retention.
    let today = chrono::NaiveDate::from_ymd_opt(2021, 5, 4).unwrap();
    let removed = server.ferry.enforce_retention(today).await.unwrap();
    assert_eq!(
        removed,
        [(
            "crm.customers".to_owned(),
            chrono::NaiveDate::from_ymd_opt(2021, 4, 3).unwrap()
        )]
    );
    let dataset = owner
        .get_dataset(pb::GetDatasetRequest {
            name: "crm.customers".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let days: Vec<_> = dataset
        .partitions
        .iter()
        .map(|p| p.partition_date.as_str())
        .collect();
    assert_eq!(days, ["2021-04-04"]);
    let (_, rows) = read_all(&mut owner, "crm.customers").await.unwrap();
    assert_eq!(rows.len(), 3);
    let retention: Vec<_> = audit_events(&server, "crm.customers")
        .await
        .into_iter()
        .filter(|e| e.action == "retention")
        .collect();
    assert_eq!(retention.len(), 1);
    assert_eq!(retention[0].principal, "system:retention");
    assert!(
        retention[0].detail.contains("2021-04-03"),
        "{:?}",
        retention[0]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn edited_policy_files_apply_without_a_restart() {
    let policies = tempfile::tempdir().unwrap();
    let policy_dir = write_test_policies(policies.path(), &[]);
    let server = TestServer::start_configured(None, |c| {
        c.policy_dir = Some(policy_dir);
        c.policy_refresh_secs = 1;
    })
    .await;
    let mut owner = server.client().await;
    register_catalog(&mut owner).await;
    let mut team_b = server.client_as(CONSUMER_B).await;
    assert_eq!(code(read_all(&mut team_b, RAW).await), Code::NotFound);

    let mut policy = std::fs::read_to_string(policies.path().join("policy.csv")).unwrap();
    policy.push_str(
        "\np, team:b, catalog.product_catalog, describe, never\np, team:b, catalog.product_catalog, read, never\n",
    );
    std::fs::write(policies.path().join("policy.csv"), policy).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while code(read_all(&mut team_b, RAW).await) != Code::Ok {
        assert!(
            std::time::Instant::now() < deadline,
            "the edit never applied"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_info_needs_a_caller_but_no_grant() {
    let server = TestServer::start(None).await;
    let status = connect_with_token(server.addr, None)
        .await
        .get_server_info(pb::GetServerInfoRequest {})
        .await
        .unwrap_err();
    assert_reason(&status, "UNAUTHENTICATED");
    assert_eq!(status.code(), Code::Unauthenticated);

    // A team with no grant at all may still ask which server this is.
    let info = server
        .client_as(CONSUMER_B)
        .await
        .get_server_info(pb::GetServerInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.api_versions, ["ferry.v1"]);
    assert_eq!(info.registry, "sqlite");
    assert_eq!(info.warehouse, "local");
    // Test servers allow plain http sources; production defaults do not.
    assert!(info.source_schemes.iter().any(|s| s == "http"));
    server.stop().await;
}
