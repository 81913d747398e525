//! Commands that work on the server itself or its database: `serve`, `migrate`, `init`,
//! `healthcheck`, `signing-keys`, `console-link`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use rekey_core::clock::{Clock, SystemClock};
use rekey_core::error::OpError;
use rekey_core::model::{AuditContext, Membership, Org, OrgId, Principal, Role, User, UserId};
use rekey_core::ops::api_tokens::new_api_token;
use rekey_core::ops::console::new_link;
use rekey_core::ops::signing_keys::add_successor;
use rekey_core::store::{MembershipChanges, Store};
use rekey_server::startup::{
    check_schema, check_server_key, configured_server_key, open_existing_store, open_store,
    server_key_for, NewKey,
};
use rekey_server::{telemetry, Application, Config};
use secrecy::ExposeSecret;

use crate::cli::{
    ConsoleLinkArgs, InitArgs, OutputFormat, ServerAdminsCommand, ServerArgs, SigningKeysCommand,
};

pub(super) async fn migrate(args: &ServerArgs) -> anyhow::Result<ExitCode> {
    let mut config = load_config(args)?;
    config.auto_migrate = true;
    let store = open_store(&config).await?;
    // A key given to this command must be the database's (none is made here).
    if let Some(key) = configured_server_key(&config)? {
        check_server_key(&store, &key).await?;
    }
    let status = check_schema(&store, true).await?;
    println!("database is up to date (migration {})", status.applied);
    for m in &status.newer {
        println!(
            "the database also has migration {} ({}) from a newer release; this binary runs \
             against it: upgrade it",
            m.version, m.description
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn load_config(args: &ServerArgs) -> anyhow::Result<Config> {
    let mut flags = serde_json::Map::new();
    if let Some(v) = &args.listen {
        flags.insert("listen".into(), v.clone().into());
    }
    if let Some(v) = &args.database_url {
        flags.insert("database_url".into(), v.clone().into());
    }
    if let Some(v) = &args.data_dir {
        flags.insert("data_dir".into(), v.display().to_string().into());
    }
    Ok(Config::load(args.config.as_deref(), &flags)?)
}

pub(super) async fn serve(args: &ServerArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(args)?;
    telemetry::init(config.log_format);
    tracing::info!(config = ?config, "starting");
    for warning in rekey_server::config::unknown_env_warnings(std::env::vars()) {
        tracing::warn!("{warning}");
    }
    let app = Application::build(config, Arc::new(SystemClock)).await?;
    app.run_until(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGINT or SIGTERM.
pub(super) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

pub(super) async fn init(args: InitArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.server)?;
    let store = open_store(&config).await?;
    let key = server_key_for(&config, &store, NewKey::MayCreate).await?;
    if store.count_orgs().await? > 0 {
        bail!("this database already has an organization; `rekey init` only sets up a new one");
    }
    let email = args.email.trim().to_string();
    if email.len() > 320 || !email.contains('@') {
        bail!("--email must be an email address");
    }
    let now = SystemClock.now();
    let ctx = AuditContext {
        actor: "cli:init".into(),
        ..Default::default()
    };
    let org = Org {
        id: OrgId::new(),
        name: args.org_name.clone(),
        created_at: now,
    };
    store
        .create_org(&org, &[ctx.event(now, "org.created").org(org.id)])
        .await?;
    let user = User {
        id: UserId::new(),
        display_name: args.display_name.clone().unwrap_or_else(|| email.clone()),
        email,
        created_at: now,
    };
    let owner = Membership {
        org_id: org.id,
        principal: Principal::User(user.id),
        role: Role::OrgOwner,
        created_at: now,
    };
    let (token, plain) = new_api_token(user.id, org.id, "init", None, &key.api_token_hasher(), now);
    // The owner, the membership and the token in one transaction: never an org without an
    // owner who can sign in.
    let changes = MembershipChanges {
        new_users: vec![user.clone()],
        audit: vec![
            ctx.event(now, "member.role_set").org(org.id).details(
                serde_json::json!({"member": owner.principal.to_string(), "role": "org_owner"}),
            ),
            ctx.event(now, "api_token.created").org(org.id).details(
                serde_json::json!({"tokenId": token.id.to_string(), "user": user.id.to_string()}),
            ),
        ],
        put: vec![owner],
        new_api_tokens: vec![token],
        ..Default::default()
    };
    store
        .change_membership(org.id, &|_| Ok(changes.clone()))
        .await?;
    // Whoever sets the server up administers it (signing-key rotation through the API).
    store.set_server_admin(user.id, true).await?;
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::json!({
                "orgId": org.id.to_string(),
                "userId": user.id.to_string(),
                "apiToken": plain.expose_secret(),
            })
        ),
        OutputFormat::Human => {
            println!("Organization {} ({})", org.name, org.id);
            println!("Owner        {} ({})", user.email, user.id);
            println!("API token    {}", plain.expose_secret());
            println!();
            println!("The API token is shown only now. Store it safely, then e.g.:");
            println!("  export REKEY_API_TOKEN=<the token>");
            println!("  rekey apps create --name my-service");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn console_link(args: ConsoleLinkArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.server)?;
    let store = open_existing_store(&config).await?;
    let key = server_key_for(&config, &store, NewKey::MustExist).await?;
    let Some(user) = store.find_user_by_email(args.email.trim()).await? else {
        bail!("no user has the email {}", args.email.trim());
    };
    let orgs = store.list_memberships_of(Principal::User(user.id)).await?;
    let org = match &args.org {
        Some(o) => {
            let id = OrgId::parse(o).ok_or_else(|| anyhow::anyhow!("--org must be an org id"))?;
            orgs.iter()
                .find(|m| m.org_id == id)
                .ok_or_else(|| anyhow::anyhow!("{} is not a member of org {id}", user.email))?
                .org_id
        }
        None => match orgs.as_slice() {
            [only] => only.org_id,
            [] => bail!("{} is not a member of any organization", user.email),
            _ => bail!(
                "{} is a member of several organizations: choose one with --org ({})",
                user.email,
                orgs.iter()
                    .map(|m| m.org_id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    };
    let now = SystemClock.now();
    let (link, token) = new_link(user.id, org, &key.console_hasher(), now);
    let ev = AuditContext {
        actor: "cli:console-link".into(),
        ..Default::default()
    }
    .event(now, "console.link_created")
    .org(org)
    .details(serde_json::json!({ "user": user.id.to_string() }));
    store.create_console_link(&link, &[ev]).await?;
    let url = format!(
        "{}/console/link?token={}",
        config.issuer(),
        token.expose_secret()
    );
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::json!({ "url": url, "expiresAt": link.expires_at.to_rfc3339() })
        ),
        OutputFormat::Human => {
            println!("{url}");
            if config.public_url.is_empty() {
                eprintln!(
                    "The link is under the listen address, as public_url is not set: set \
                     public_url to the address people open the console at."
                );
            }
            eprintln!(
                "Open it in a browser within 15 minutes (until {}); it works once.",
                link.expires_at.to_rfc3339()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn healthcheck(url: &str) -> anyhow::Result<ExitCode> {
    let url = format!("{}/readyz", url.trim_end_matches('/'));
    let ok = match reqwest::Client::new()
        .get(&url)
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
    {
        Ok(r) => r.status().is_success(),
        Err(_) => false,
    };
    println!("{}", if ok { "healthy" } else { "unhealthy" });
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(super) async fn signing_keys(cmd: SigningKeysCommand) -> anyhow::Result<ExitCode> {
    let (args, rotate) = match cmd {
        SigningKeysCommand::List(a) => (a, false),
        SigningKeysCommand::Rotate(a) => (a, true),
    };
    let config = load_config(&args)?;
    let store = open_existing_store(&config).await?;
    let now = SystemClock.now();
    if !rotate {
        if let Some(key) = configured_server_key(&config)? {
            check_server_key(&store, &key).await?;
        }
    }
    if rotate {
        let key = server_key_for(&config, &store, NewKey::MustExist).await?;
        let audit = AuditContext {
            actor: "cli:signing-keys".into(),
            ..Default::default()
        };
        let new = add_successor(
            &store,
            &key.sealer("signing-keys"),
            now,
            config.signing_key_timing(),
            &audit,
        )
        .await
        .map_err(|e| match e {
            OpError::Conflict(why) => anyhow::anyhow!("{why}; see `rekey signing-keys list`"),
            e => e.into(),
        })?;
        println!(
            "new signing key {}: published now, signing from {} (the current key signs until then)",
            new.kid,
            new.signs_from().to_rfc3339()
        );
    }
    for k in store.list_signing_keys().await? {
        let state = match (k.publish_until, k.signs_from) {
            (_, Some(from)) if now < from => format!("published, signs from {}", from.to_rfc3339()),
            (None, _) => "signing".to_string(),
            (Some(t), _) => format!("published until {}", t.to_rfc3339()),
        };
        println!(
            "{}  {}  created {}  {}",
            k.kid,
            k.algorithm,
            k.created_at.to_rfc3339(),
            state
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn server_admins(cmd: ServerAdminsCommand) -> anyhow::Result<ExitCode> {
    let (args, change) = match cmd {
        ServerAdminsCommand::List(a) => (a, None),
        ServerAdminsCommand::Add(a) => (a.server, Some((a.email, true))),
        ServerAdminsCommand::Remove(a) => (a.server, Some((a.email, false))),
    };
    let config = load_config(&args)?;
    let store = open_existing_store(&config).await?;
    server_key_for(&config, &store, NewKey::MustExist).await?;
    if let Some((email, admin)) = change {
        let Some(user) = store.find_user_by_email(email.trim()).await? else {
            bail!("no user has the email {}", email.trim());
        };
        store.set_server_admin(user.id, admin).await?;
        let now = SystemClock.now();
        let action = if admin {
            "server_admin.added"
        } else {
            "server_admin.removed"
        };
        let ev = AuditContext {
            actor: "cli:server-admins".into(),
            ..Default::default()
        }
        .event(now, action)
        .details(serde_json::json!({ "user": user.id.to_string() }));
        store.append_audit(&[ev]).await?;
    }
    for user in store.list_server_admins().await? {
        println!("{}  {}", user.email, user.id);
    }
    Ok(ExitCode::SUCCESS)
}
