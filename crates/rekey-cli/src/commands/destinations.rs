//! `rekey destinations` (where an app's notifications go) and `rekey deliveries` (what the
//! outbox did with them).

use std::process::ExitCode;

use anyhow::bail;
use rekey_proto::native::{DeliveryQuery, DeliveryView, DestinationRequest, DestinationView};

use super::print_json;
use crate::api::{ApiClient, Explain as _};
use crate::cli::{DeliveriesCommand, DestinationsCommand, OutputFormat};

pub(super) async fn run(cmd: DestinationsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DestinationsCommand::Set {
            api,
            app,
            notification_type,
            sqs_queue_url,
            region,
            endpoint_url,
            webhook_url,
            directory,
            secrets_manager_secret_id,
        } => {
            let req = if let Some(id) = secrets_manager_secret_id {
                DestinationRequest {
                    kind: "secrets_manager".into(),
                    secret_id: Some(id),
                    region,
                    endpoint_url,
                    ..Default::default()
                }
            } else if let Some(q) = sqs_queue_url {
                DestinationRequest {
                    kind: "sqs".into(),
                    queue_url: Some(q),
                    region,
                    endpoint_url,
                    ..Default::default()
                }
            } else if let Some(u) = webhook_url {
                DestinationRequest {
                    kind: "webhook".into(),
                    url: Some(u),
                    ..Default::default()
                }
            } else if let Some(d) = directory {
                DestinationRequest {
                    kind: "file".into(),
                    directory: Some(d),
                    ..Default::default()
                }
            } else {
                bail!("give one of --sqs-queue-url, --webhook-url, --directory or --secrets-manager-secret-id");
            };
            let c = ApiClient::connect(&api).await?;
            let d = c
                .api
                .set_destination(&c.org, &app, notification_type.api_name(), &req)
                .await
                .explain()?;
            match api.output {
                OutputFormat::Json => print_json(&d)?,
                OutputFormat::Human => {
                    print_destination(&d);
                    if let Some(s) = &d.signing_secret {
                        println!("webhook signing secret  {s}");
                        println!("The signing secret is shown only now; verify webhook-signature with it.");
                    }
                }
            }
        }
        DestinationsCommand::List { api, app } => {
            let c = ApiClient::connect(&api).await?;
            let list = c.api.list_destinations(&c.org, &app).await.explain()?;
            match api.output {
                OutputFormat::Json => print_json(&list)?,
                OutputFormat::Human if list.items.is_empty() => println!("no destinations"),
                OutputFormat::Human => list.items.iter().for_each(print_destination),
            }
        }
        DestinationsCommand::Remove {
            api,
            app,
            notification_type,
        } => {
            let c = ApiClient::connect(&api).await?;
            let kind = notification_type.api_name();
            c.api
                .delete_destination(&c.org, &app, kind)
                .await
                .explain()?;
            println!("removed the {kind} destination");
        }
        DestinationsCommand::Test {
            api,
            app,
            notification_type,
        } => {
            let c = ApiClient::connect(&api).await?;
            let q = c
                .api
                .test_destination(&c.org, &app, notification_type.api_name())
                .await
                .explain()?;
            match api.output {
                OutputFormat::Json => print_json(&q)?,
                OutputFormat::Human => println!(
                    "test notification {} queued; follow it with `rekey deliveries list --app {app}`",
                    q.notification_id
                ),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_destination(d: &DestinationView) {
    let where_ = d
        .queue_url
        .clone()
        .or_else(|| d.url.clone())
        .or_else(|| d.directory.clone())
        .or_else(|| d.secret_id.clone())
        .unwrap_or_default();
    println!("{}  {:<7}  {}", d.notification_type, d.kind, where_);
}

pub(super) async fn deliveries(cmd: DeliveriesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DeliveriesCommand::List { api, app, state } => {
            let c = ApiClient::connect(&api).await?;
            let query = DeliveryQuery {
                app_id: app,
                state,
                page_limit: Some(1000),
                ..Default::default()
            };
            let list = c.api.list_deliveries(&c.org, &query).await.explain()?;
            match api.output {
                OutputFormat::Json => print_json(&list)?,
                OutputFormat::Human if list.items.is_empty() => println!("no deliveries"),
                OutputFormat::Human => list.items.iter().for_each(print_delivery),
            }
        }
        DeliveriesCommand::Retry { api, delivery_id } => {
            let c = ApiClient::connect(&api).await?;
            let d = c.api.retry_delivery(&c.org, &delivery_id).await.explain()?;
            match api.output {
                OutputFormat::Json => print_json(&d)?,
                OutputFormat::Human => print_delivery(&d),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_delivery(d: &DeliveryView) {
    println!(
        "{}  {:<9}  attempts {}  {}  notification {}{}",
        d.id,
        d.state,
        d.attempts,
        d.notification_type,
        d.notification_id,
        d.last_error
            .as_deref()
            .map(|e| format!("  last error: {e}"))
            .unwrap_or_default()
    );
}
