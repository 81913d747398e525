//! End to end against a real SQS-compatible server (moto, started by scripts/test.sh), read
//! with boto3 through tests/external/sqs_tool.py: Rekey's own code never reads the queue.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::spawn_app;

const ROTATION_SCOPE: &str = "sellingpartnerapi::client_credential:rotation";

/// The moto endpoint and the venv's python, or `None` to skip (never in CI).
fn sqs_env() -> Option<(String, String)> {
    match (
        std::env::var("REKEY_TEST_SQS_ENDPOINT"),
        std::env::var("REKEY_TEST_PYTHON"),
    ) {
        (Ok(e), Ok(p)) => Some((e, p)),
        _ if rekey_store::testing::in_ci() => {
            panic!("REKEY_TEST_SQS_ENDPOINT and REKEY_TEST_PYTHON must be set in CI (scripts/test.sh sets them)")
        }
        _ => {
            eprintln!("skipping SQS: REKEY_TEST_SQS_ENDPOINT and REKEY_TEST_PYTHON are not set");
            None
        }
    }
}

fn boto3(python: &str, endpoint: &str, command: &str, arg: &str) -> String {
    let tool = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/external/sqs_tool.py"
    );
    let out = Command::new(python)
        .args([tool, endpoint, command, arg])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "sqs_tool {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn rotation_reaches_an_sqs_queue_and_the_old_secret_ends_with_the_grace_period() {
    let Some((endpoint, python)) = sqs_env() else {
        eprintln!("skipped: no SQS-compatible server configured");
        return;
    };
    let app = spawn_app().await;
    let queue_url = boto3(
        &python,
        &endpoint,
        "create",
        &format!("rekey-{}", uuid::Uuid::new_v4().simple()),
    );
    let c = app.create_app(json!({})).await;
    let (id, old) = (c.app.client_id.clone(), c.client_secret.clone());
    app.set_destination(
        c.app.id,
        "APPLICATION_OAUTH_CLIENT_NEW_SECRET",
        json!({"kind": "sqs", "queueUrl": queue_url, "region": "us-east-1", "endpointUrl": endpoint}),
    )
    .await;

    let token = app.lwa_token(&id, &old, Some(ROTATION_SCOPE)).await;
    let res = app.spapi_rotate(&token).await;
    assert_eq!(res.status(), 204);
    assert!(res.headers().contains_key("x-amzn-requestid"));
    assert_eq!(res.headers()["x-amzn-ratelimit-limit"], "0.0167");
    assert_eq!(app.valid_secrets(c.app.id).await, 2);
    assert_eq!(app.drain().await, 1);
    let d = &app
        .store()
        .list_deliveries(app.org_id, None, None, Default::default())
        .await
        .unwrap()[0];
    assert_eq!(
        d.state,
        rekey_core::notify::DeliveryState::Delivered,
        "{:?}",
        d.last_error
    );

    let messages: Vec<Value> =
        serde_json::from_str(&boto3(&python, &endpoint, "receive", &queue_url)).unwrap();
    assert_eq!(messages.len(), 1);
    let n = &messages[0];
    assert_eq!(n["notificationType"], "APPLICATION_OAUTH_CLIENT_NEW_SECRET");
    assert_eq!(n["notificationVersion"], "1.0");
    assert_eq!(n["payloadVersion"], "2023-11-30");
    assert_eq!(
        n["notificationMetadata"]["notificationId"],
        d.notification_id.to_string()
    );
    let p = &n["payload"]["applicationOAuthClientNewSecret"];
    assert_eq!(p["clientId"], id);
    let new = p["newClientSecret"].as_str().unwrap();

    assert_eq!(app.status_of(&id, new).await, 200, "the new secret works");
    assert_eq!(
        app.status_of(&id, &old).await,
        200,
        "the old one works during the grace period"
    );
    app.clock.advance(Duration::from_secs(7 * 86_400));
    assert_eq!(app.status_of(&id, &old).await, 400, "and not after it");
    assert_eq!(app.status_of(&id, new).await, 200);
    assert_eq!(app.valid_secrets(c.app.id).await, 1);
}
