//! `rekey apps`: create, list, show, update, delete.

use std::process::ExitCode;

use rekey_proto::native::{
    AppView, CreateAppRequest, RotationPolicyView, RotationStatusView, UpdateAppRequest,
};

use super::print_json;
use crate::api::{ApiClient, Explain as _};
use crate::cli::{AppsCommand, OutputFormat, PolicyArgs};

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
            policy,
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
                rotation_policy: (!policy.is_empty())
                    .then(|| overlay(RotationPolicyView::default(), &policy)),
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
            let status = c
                .api
                .rotation_status(&c.org, &app.id.to_string())
                .await
                .explain()?;
            match api.output {
                // The app as the API shows it, with what its policy does next beside it.
                OutputFormat::Json => {
                    let mut shown = serde_json::to_value(&app)?;
                    shown["rotationPolicyStatus"] = serde_json::to_value(&status)?;
                    print_json(&shown)?
                }
                OutputFormat::Human => {
                    print_app(&app);
                    print_policy(&status);
                }
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
            policy,
            inherit_org_policy,
        } => {
            let c = ApiClient::connect(&api).await?;
            // The policy is replaced whole: start from the app's own unless told to inherit.
            let rotation_policy = if inherit_org_policy || !policy.is_empty() {
                let base = if inherit_org_policy {
                    RotationPolicyView::default()
                } else {
                    c.api.get_app(&c.org, &app).await.explain()?.rotation_policy
                };
                Some(overlay(base, &policy))
            } else {
                None
            };
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
                rotation_policy,
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

/// `base` with the fields the options give.
pub(super) fn overlay(base: RotationPolicyView, args: &PolicyArgs) -> RotationPolicyView {
    RotationPolicyView {
        rotate_before_expiry_seconds: args
            .rotate_before_expiry
            .or(base.rotate_before_expiry_seconds),
        retire_when_unused_seconds: args.retire_when_unused.or(base.retire_when_unused_seconds),
    }
}

/// One policy field as a person reads it: its value and where it comes from.
fn policy_field(own: Option<i64>, org: Option<i64>) -> String {
    match (own, org) {
        (Some(0), _) => "off".into(),
        (Some(s), _) => format!("{s} s"),
        (None, Some(s)) if s > 0 => format!("{s} s (org default)"),
        (None, _) => "off (org default)".into(),
    }
}

fn print_policy(s: &RotationStatusView) {
    println!(
        "  rotation policy: rotate before expiry {}, retire when unused {}",
        policy_field(
            s.app.rotate_before_expiry_seconds,
            s.org.rotate_before_expiry_seconds
        ),
        policy_field(
            s.app.retire_when_unused_seconds,
            s.org.retire_when_unused_seconds
        ),
    );
    if let Some(at) = &s.next_rotation_at {
        println!("  next automatic rotation: {at}");
    }
    match (s.next_step.as_str(), &s.reason) {
        ("nothing", _) => {}
        (step, Some(reason)) => println!("  next policy step: {step} ({reason})"),
        (step, None) => println!("  next policy step: {step}"),
    }
}
