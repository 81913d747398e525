//! `rekey apps`: create, list, show, update, delete.

use std::process::ExitCode;

use rekey_proto::native::{AppView, CreateAppRequest, UpdateAppRequest};

use super::print_json;
use crate::api::{ApiClient, Explain as _};
use crate::cli::{AppsCommand, OutputFormat};

/// How long SP-API rotations keep the old secret: the SP-API contract, whatever the app's
/// own rotation grace says.
const SPAPI_GRACE: &str = "7 days";

pub(super) async fn run(cmd: AppsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AppsCommand::Create {
            api,
            name,
            description,
            client_id,
            scopes,
            token_ttl,
            secret_lifetime,
            service_account_role,
            audiences,
        } => {
            let c = ApiClient::connect(&api).await?;
            let req = CreateAppRequest {
                name,
                description,
                client_id,
                scopes: Some(scopes),
                access_token_ttl_seconds: token_ttl,
                secret_lifetime_seconds: secret_lifetime,
                service_account_role,
                audiences: (!audiences.is_empty()).then_some(audiences),
                ..Default::default()
            };
            let created = c.api.create_app(&c.org, &req).await.explain()?;
            match api.output {
                OutputFormat::Json => print_json(&created)?,
                OutputFormat::Human => {
                    print_app(&created.app);
                    println!("client id      {}", created.app.client_id);
                    println!("client secret  {}", created.client_secret);
                    println!("The client secret is shown only now.");
                }
            }
        }
        AppsCommand::List { api } => {
            let c = ApiClient::connect(&api).await?;
            let list = c.api.list_apps(&c.org, 1000).await.explain()?;
            match api.output {
                OutputFormat::Json => print_json(&list)?,
                OutputFormat::Human => {
                    if list.items.is_empty() {
                        println!("no apps");
                    }
                    for a in &list.items {
                        println!("{}  {}  {}", a.id, a.client_id, a.name);
                    }
                }
            }
        }
        AppsCommand::Show { api, app } => {
            let c = ApiClient::connect(&api).await?;
            let app = c.api.get_app(&c.org, &app).await.explain()?;
            match api.output {
                OutputFormat::Json => print_json(&app)?,
                OutputFormat::Human => print_app(&app),
            }
        }
        AppsCommand::Update {
            api,
            app,
            name,
            description,
            scopes,
            token_ttl,
            secret_lifetime,
            rotation_grace,
            audiences,
            no_audiences,
        } => {
            let c = ApiClient::connect(&api).await?;
            let req = UpdateAppRequest {
                name,
                description,
                scopes: (!scopes.is_empty()).then_some(scopes),
                access_token_ttl_seconds: token_ttl,
                secret_lifetime_seconds: secret_lifetime,
                rotation_grace_seconds: rotation_grace,
                audiences: if no_audiences {
                    Some(Vec::new())
                } else {
                    (!audiences.is_empty()).then_some(audiences)
                },
                ..Default::default()
            };
            let updated = c.api.update_app(&c.org, &app, &req).await.explain()?;
            match api.output {
                OutputFormat::Json => print_json(&updated)?,
                OutputFormat::Human => print_app(&updated),
            }
        }
        AppsCommand::Delete { api, app } => {
            let c = ApiClient::connect(&api).await?;
            c.api.delete_app(&c.org, &app).await.explain()?;
            if api.output == OutputFormat::Human {
                println!("deleted {app}");
            } else {
                print_json(&serde_json::json!({ "deleted": app }))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_app(a: &AppView) {
    println!("{}  {}  {}", a.id, a.client_id, a.name);
    println!(
        "  scopes: {}",
        if a.scopes.is_empty() {
            "(none)".into()
        } else {
            a.scopes.join(" ")
        }
    );
    if !a.audiences.is_empty() {
        println!(
            "  audiences: {} (default {})",
            a.audiences.join(" "),
            a.audiences[0]
        );
    }
    println!(
        "  token ttl {} s, secret lifetime {} s{}",
        a.access_token_ttl_seconds,
        a.secret_lifetime_seconds,
        if a.service_account {
            ", service account"
        } else {
            ""
        }
    );
    println!(
        "  after a rotation the old secret keeps working: {} s (native and CSP rotations), {SPAPI_GRACE} (SP-API rotations)",
        a.rotation_grace_seconds,
    );
}
