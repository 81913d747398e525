//! `rekey rotation-policy`: the organization's default rotation policy.

use std::process::ExitCode;

use rekey_proto::native::RotationPolicyView;

use super::apps::overlay;
use super::print_json;
use crate::api::{ApiClient, Explain as _};
use crate::cli::{OutputFormat, RotationPolicyCommand};

pub(super) async fn run(cmd: RotationPolicyCommand) -> anyhow::Result<ExitCode> {
    let (api, policy) = match cmd {
        RotationPolicyCommand::Show { api } => {
            let c = ApiClient::connect(&api).await?;
            let policy = c.api.org_rotation_policy(&c.org).await.explain()?;
            (api, policy)
        }
        RotationPolicyCommand::Set { api, policy } => {
            let c = ApiClient::connect(&api).await?;
            let current = c.api.org_rotation_policy(&c.org).await.explain()?;
            let policy = c
                .api
                .set_org_rotation_policy(&c.org, &overlay(current, &policy))
                .await
                .explain()?;
            (api, policy)
        }
    };
    match api.output {
        OutputFormat::Json => print_json(&policy)?,
        OutputFormat::Human => print_org_policy(&policy),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_org_policy(p: &RotationPolicyView) {
    let field = |v: Option<i64>| match v {
        Some(s) if s > 0 => format!("{s} s"),
        _ => "off".into(),
    };
    println!(
        "org default: rotate before expiry {}, retire when unused {}",
        field(p.rotate_before_expiry_seconds),
        field(p.retire_when_unused_seconds)
    );
}
