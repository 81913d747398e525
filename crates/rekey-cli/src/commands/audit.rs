//! `rekey audit list`.

use std::process::ExitCode;

use rekey_proto::native::AuditQuery;

use super::print_json;
use crate::api::{ApiClient, Explain as _};
use crate::cli::{AuditCommand, OutputFormat};

pub(super) async fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::List {
        api,
        app,
        action,
        since,
        until,
        limit,
    } = cmd;
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
