//! `rekey audit list` and `rekey audit verify`.

use std::process::ExitCode;

use rekey_proto::native::AuditQuery;

use super::print_json;
use crate::api::{ApiClient, Explain as _};
use crate::cli::{AuditCommand, OutputFormat};

pub(super) async fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let (api, app, action, since, until, limit) = match cmd {
        AuditCommand::List {
            api,
            app,
            action,
            since,
            until,
            limit,
        } => (api, app, action, since, until, limit),
        AuditCommand::Verify { api } => return verify(api).await,
    };
    let c = ApiClient::connect(&api).await?;
    let query = AuditQuery {
        app_id: app,
        action,
        since,
        until,
        page_limit: Some(limit),
        ..Default::default()
    };
    let list = c.api.list_audit(&c.org, &query).await.explain()?;
    match api.output {
        OutputFormat::Json => print_json(&list)?,
        OutputFormat::Human => {
            for e in &list.items {
                println!(
                    "{}  {:<26}  {:<8}  {}{}",
                    e.time,
                    e.action,
                    e.outcome,
                    e.actor,
                    e.app_id.map(|a| format!("  app {a}")).unwrap_or_default()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn verify(api: crate::cli::ApiArgs) -> anyhow::Result<ExitCode> {
    let c = ApiClient::connect(&api).await?;
    let report = c.api.verify_audit(&c.org).await.explain()?;
    match api.output {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Human => match &report.broken {
            None => println!(
                "the audit chain is intact: {} events linked{}",
                report.events,
                if report.unlinked > 0 {
                    format!(
                        " ({} earlier events from before the chain)",
                        report.unlinked
                    )
                } else {
                    String::new()
                }
            ),
            Some(b) => println!(
                "the audit chain is BROKEN after {} intact events, {}: {}",
                report.events,
                b.event_id
                    .as_deref()
                    .map_or_else(|| "at its end".to_string(), |e| format!("at event {e}")),
                b.reason
            ),
        },
    }
    Ok(if report.intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
