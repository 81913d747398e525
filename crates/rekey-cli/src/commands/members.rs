//! `rekey members` (users and service accounts, with their roles) and `rekey api-tokens`.

use std::process::ExitCode;

use rekey_proto::native::{AddMemberRequest, ApiTokenView, CreateApiTokenRequest, MemberView};

use super::print_json;
use crate::api::{ApiClient, Explain as _};
use crate::cli::{ApiTokensCommand, MembersCommand, OutputFormat};

fn print_member(output: OutputFormat, m: &MemberView) -> anyhow::Result<()> {
    match output {
        OutputFormat::Json => print_json(m),
        OutputFormat::Human => {
            println!("{:<4}  {}  {}", m.kind, m.id, m.role);
            Ok(())
        }
    }
}

pub(super) async fn run(cmd: MembersCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        MembersCommand::List { api } => {
            let c = ApiClient::connect(&api).await?;
            let list = c.api.list_members(&c.org).await.explain()?;
            match api.output {
                OutputFormat::Json => print_json(&list)?,
                OutputFormat::Human => {
                    for m in &list {
                        print_member(api.output, m)?;
                    }
                }
            }
        }
        MembersCommand::Add {
            api,
            email,
            role,
            display_name,
        } => {
            let c = ApiClient::connect(&api).await?;
            let req = AddMemberRequest {
                email,
                display_name,
                role,
            };
            let added = c.api.add_member(&c.org, &req).await.explain()?;
            match api.output {
                OutputFormat::Json => print_json(&added)?,
                OutputFormat::Human => {
                    println!("{} ({}) is {}", added.email, added.user_id, added.role);
                    if let Some(t) = &added.api_token {
                        println!("API token  {t}");
                        println!(
                            "The API token is shown only now; hand it to the new member safely."
                        );
                    }
                }
            }
        }
        MembersCommand::SetRole {
            api,
            kind,
            id,
            role,
        } => {
            let c = ApiClient::connect(&api).await?;
            let m = c
                .api
                .set_role(&c.org, kind.path(), &id, &role)
                .await
                .explain()?;
            print_member(api.output, &m)?;
        }
        MembersCommand::Remove { api, kind, id } => {
            let c = ApiClient::connect(&api).await?;
            c.api
                .remove_member(&c.org, kind.path(), &id)
                .await
                .explain()?;
            println!("removed {} {id}", kind.path());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_token(t: &ApiTokenView) {
    let state = if t.revoked_at.is_some() {
        "revoked"
    } else {
        "active"
    };
    println!(
        "{}  {:<7}  ...{}  {}  user {}  expires {}",
        t.id,
        state,
        t.hint,
        t.name,
        t.user_id,
        t.expires_at.as_deref().unwrap_or("never")
    );
}

pub(super) async fn api_tokens(cmd: ApiTokensCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ApiTokensCommand::Create {
            api,
            name,
            expires_in,
        } => {
            let c = ApiClient::connect(&api).await?;
            let req = CreateApiTokenRequest {
                name,
                expires_in_seconds: expires_in,
            };
            let created = c.api.create_api_token(&c.org, &req).await.explain()?;
            match api.output {
                OutputFormat::Json => print_json(&created)?,
                OutputFormat::Human => {
                    print_token(&created.token);
                    println!("API token  {}", created.api_token);
                    println!("The API token is shown only now.");
                }
            }
        }
        ApiTokensCommand::List { api } => {
            let c = ApiClient::connect(&api).await?;
            let list = c.api.list_api_tokens(&c.org).await.explain()?;
            match api.output {
                OutputFormat::Json => print_json(&list)?,
                OutputFormat::Human => list.items.iter().for_each(print_token),
            }
        }
        ApiTokensCommand::Revoke { api, token_id } => {
            let c = ApiClient::connect(&api).await?;
            let t = c.api.revoke_api_token(&c.org, &token_id).await.explain()?;
            match api.output {
                OutputFormat::Json => print_json(&t)?,
                OutputFormat::Human => print_token(&t),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
