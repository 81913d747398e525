//! `rekey secrets`: list, rotate, regenerate, finish.

use std::process::ExitCode;

use anyhow::bail;
use rekey_proto::native::{NewSecretView, RotateRequest};

use super::print_json;
use crate::api::{ApiClient, Explain as _};
use crate::cli::{OutputFormat, SecretsCommand};

pub(super) async fn run(cmd: SecretsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SecretsCommand::List { api, app } => {
            let c = ApiClient::connect(&api).await?;
            let list = c.api.list_secrets(&c.org, &app).await.explain()?;
            match api.output {
                OutputFormat::Json => print_json(&list)?,
                OutputFormat::Human => {
                    for s in &list.items {
                        println!(
                            "{}  {:<8}  ...{}  created {}  expires {}  last used {}",
                            s.id,
                            s.state,
                            s.hint,
                            s.created_at,
                            s.expires_at.as_deref().unwrap_or("never"),
                            s.last_used_at.as_deref().unwrap_or("never"),
                        );
                    }
                }
            }
        }
        SecretsCommand::Rotate {
            api,
            app,
            grace_seconds,
        } => {
            let c = ApiClient::connect(&api).await?;
            let req = RotateRequest { grace_seconds };
            let n = c.api.rotate(&c.org, &app, &req).await.explain()?;
            print_new_secret(api.output, &n)?;
        }
        SecretsCommand::Regenerate { api, app, yes } => {
            if !yes {
                bail!("regenerating revokes every valid secret of the app at once; run again with --yes to confirm");
            }
            let c = ApiClient::connect(&api).await?;
            let n = c.api.regenerate(&c.org, &app).await.explain()?;
            print_new_secret(api.output, &n)?;
        }
        SecretsCommand::Finish { api, app } => {
            let c = ApiClient::connect(&api).await?;
            let f = c.api.finish(&c.org, &app).await.explain()?;
            match api.output {
                OutputFormat::Json => print_json(&f)?,
                OutputFormat::Human if f.revoked.is_empty() => println!("no rotation in progress"),
                OutputFormat::Human => {
                    for s in &f.revoked {
                        println!("revoked previous secret {} (...{})", s.id, s.hint);
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_new_secret(output: OutputFormat, n: &NewSecretView) -> anyhow::Result<()> {
    match output {
        OutputFormat::Json => print_json(n)?,
        OutputFormat::Human => {
            println!("client id      {}", n.client_id);
            println!("client secret  {}", n.client_secret);
            println!(
                "expires        {}",
                n.secret.expires_at.as_deref().unwrap_or("never")
            );
            if let Some(p) = &n.previous_expires_at {
                println!("previous secret works until {p}");
            }
            if let Some(id) = n.notification_id {
                println!("notification {id} queued to the app's destination");
            }
            println!("The client secret is shown only now.");
        }
    }
    Ok(())
}
