//! The server process: health, reflection, and a clean exit on SIGTERM.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use ferry_testkit::*;
use futures::StreamExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

/// A channel without Ferry's bearer token: health and reflection need none.
async fn plain_channel(server: &TestServer) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_reflection_are_served() {
    let server = TestServer::start(None).await;
    let channel = plain_channel(&server).await;
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "ferry.v1.FerryService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"ferry.v1.FerryService"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_server_cleanly() {
    let scratch = tempfile::tempdir().unwrap();
    let mut child = spawn_ferry_server(scratch.path(), free_port(), |_| {});
    let exit = terminate(&mut child);
    assert!(exit.success(), "{exit:?}");
    assert!(scratch.path().join("registry.sqlite").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_config_file_is_a_clear_startup_error() {
    let scratch = tempfile::tempdir().unwrap();
    let config = scratch.path().join("ferry.toml");
    std::fs::write(&config, "listen = \"not an address\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_ferry-server"))
        .args(["--config"])
        .arg(&config)
        .arg("serve")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("listen"), "{stderr}");
}

#[test]
fn environment_overrides_the_config_file() {
    let scratch = tempfile::tempdir().unwrap();
    let config = scratch.path().join("ferry.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:7000\"\ndata_dir = \"/from/file\"\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_ferry-server"))
        .arg("--config")
        .arg(&config)
        .arg("config")
        .env("FERRY_DATA_DIR", "/from/env")
        .env("FERRY_SOURCES__S3__ENDPOINT", "http://127.0.0.1:9000")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let effective: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(effective["listen"], "127.0.0.1:7000");
    assert_eq!(effective["data_dir"], "/from/env");
    assert_eq!(
        effective["sources"]["s3"]["endpoint"],
        "http://127.0.0.1:9000"
    );
}

#[test]
fn an_invalid_log_level_is_refused_at_startup() {
    let scratch = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_ferry-server"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(scratch.path())
        .env("FERRY_LOG_LEVEL", "ferry_server=loud")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("log_level"), "{stderr}");
}

/// Clients that speak only the older reflection version (grpcurl before 1.9, Postman) list the
/// services and describe them too.
#[tokio::test(flavor = "multi_thread")]
async fn reflection_is_served_as_v1alpha_too() {
    use prost::Message;
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

    let server = TestServer::start(None).await;
    let channel = plain_channel(&server).await;
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol("ferry.v1.FerryService".into()),
    ]
    .map(|message| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    });
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"ferry.v1.FerryService"), "{names:?}");
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected the file that defines FerryService");
    };
    let file = prost_types::FileDescriptorProto::decode(files.file_descriptor_proto[0].as_slice())
        .unwrap();
    let service = file
        .service
        .iter()
        .find(|s| s.name() == "FerryService")
        .unwrap();
    assert!(
        service
            .method
            .iter()
            .any(|m| m.name() == "PublishPartition"),
        "{:?}",
        service.method
    );
    server.stop().await;
}

/// grpcurl 1.8 speaks only v1alpha reflection: through it, it lists the services, describes one
/// and calls a method with a JSON body, as an operator would.
#[tokio::test(flavor = "multi_thread")]
async fn grpcurl_lists_describes_and_calls_through_reflection() {
    let server = TestServer::start(None).await;
    register_catalog(&mut server.client().await).await;
    let stdout = |output: std::process::Output| {
        assert!(
            output.status.success(),
            "grpcurl failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };

    let listed = stdout(grpcurl(server.addr, &[], &["list"]).await);
    assert!(
        listed.lines().any(|line| line == "ferry.v1.FerryService"),
        "{listed}"
    );
    let described = stdout(grpcurl(server.addr, &[], &["describe", "ferry.v1.FerryService"]).await);
    assert!(
        described.contains(
            "rpc PublishPartition ( .ferry.v1.PublishPartitionRequest ) \
             returns ( stream .ferry.v1.PublishPartitionEvent );"
        ),
        "{described}"
    );

    let method = "ferry.v1.FerryService/ListDatasets";
    let bearer = format!("authorization: Bearer {}", server.tokens[OWNER]);
    let called = grpcurl(server.addr, &["-H", &bearer, "-d", "{}"], &[method]).await;
    let listing: serde_json::Value = serde_json::from_str(&stdout(called)).unwrap();
    let names: Vec<&str> = listing["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|dataset| dataset["contract"]["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["catalog.product_catalog"], "{listing}");

    // Without a token the call is refused, and grpcurl shows the code.
    let refused = grpcurl(server.addr, &["-d", "{}"], &[method]).await;
    assert!(!refused.status.success());
    let shown = String::from_utf8_lossy(&refused.stderr);
    assert!(shown.contains("Code: Unauthenticated"), "{shown}");
    server.stop().await;
}
