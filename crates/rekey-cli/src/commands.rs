//! What each command does.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use rekey_core::clock::{Clock, SystemClock};
use rekey_core::model::{AuditContext, Membership, Org, OrgId, Principal, Role, User, UserId};
use rekey_core::ops::api_tokens::new_api_token;
use rekey_core::store::Store;
use rekey_core::token::generate_signing_key;
use rekey_proto::native::{
    AppList, AppView, CreateAppRequest, CreatedApp, DeliveryList, DeliveryView, DestinationList,
    DestinationRequest, DestinationView, FinishedRotation, NewSecretView, QueuedNotification,
    RotateRequest, SecretList,
};
use rekey_server::startup::{load_or_create_server_key, open_store};
use rekey_server::{telemetry, Application, Config};
use reqwest::Method;
use secrecy::ExposeSecret;

use crate::api::ApiClient;
use crate::cli::{
    ApiTokensCommand, AppsCommand, AuditCommand, Command, DeliveriesCommand, DestinationsCommand,
    InitArgs, MembersCommand, OutputFormat, SecretsCommand, ServerArgs, SigningKeysCommand,
};

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve(&args).await,
        Command::Migrate(args) => {
            let mut config = load_config(&args)?;
            config.auto_migrate = true;
            open_store(&config).await?;
            println!("database is up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::Init(args) => init(args).await,
        Command::Healthcheck(args) => healthcheck(&args.url).await,
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            let mut cmd = crate::cli::Cli::command();
            clap_complete::generate(shell, &mut cmd, "rekey", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::DefaultConfig => {
            print!("{}", rekey_server::config::EXAMPLE_CONFIG);
            Ok(ExitCode::SUCCESS)
        }
        Command::SigningKeys(cmd) => signing_keys(cmd).await,
        Command::Rotate(args) => Ok(crate::rotate::run(*args).await),
        Command::Apps(cmd) => apps(cmd).await,
        Command::Secrets(cmd) => secrets(cmd).await,
        Command::Members(cmd) => members(cmd).await,
        Command::ApiTokens(cmd) => api_tokens(cmd).await,
        Command::Audit(cmd) => audit(cmd).await,
        Command::Destinations(cmd) => destinations(cmd).await,
        Command::Deliveries(cmd) => deliveries(cmd).await,
    }
}

fn load_config(args: &ServerArgs) -> anyhow::Result<Config> {
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

async fn serve(args: &ServerArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(args)?;
    telemetry::init(config.log_format);
    tracing::info!(config = ?config, "starting");
    let app = Application::build(config, Arc::new(SystemClock)).await?;
    app.run_until(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
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

async fn init(args: InitArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.server)?;
    let store = open_store(&config).await?;
    let key = load_or_create_server_key(&config)?;
    if store.count_orgs().await? > 0 {
        bail!("this database already has an organization; `rekey init` only sets up a new one");
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
    let email = args.email.trim().to_string();
    if !email.contains('@') {
        bail!("--email must be an email address");
    }
    let user = User {
        id: UserId::new(),
        display_name: args.display_name.clone().unwrap_or_else(|| email.clone()),
        email,
        created_at: now,
    };
    store.create_user(&user).await?;
    let m = Membership {
        org_id: org.id,
        principal: Principal::User(user.id),
        role: Role::OrgOwner,
        created_at: now,
    };
    store
        .put_membership(
            &m,
            &[ctx.event(now, "member.role_set").org(org.id).details(
                serde_json::json!({"member": m.principal.to_string(), "role": "org_owner"}),
            )],
        )
        .await?;
    let (token, plain) = new_api_token(user.id, org.id, "init", None, &key.api_token_hasher(), now);
    store
        .create_api_token(&token, &[ctx.event(now, "api_token.created").org(org.id)])
        .await?;
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

async fn healthcheck(url: &str) -> anyhow::Result<ExitCode> {
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

async fn signing_keys(cmd: SigningKeysCommand) -> anyhow::Result<ExitCode> {
    let (args, rotate) = match cmd {
        SigningKeysCommand::List(a) => (a, false),
        SigningKeysCommand::Rotate(a) => (a, true),
    };
    let config = load_config(&args)?;
    let store = open_store(&config).await?;
    let now = SystemClock.now();
    if rotate {
        let key = load_or_create_server_key(&config)?;
        let new = generate_signing_key(&key.sealer("signing-keys"), now);
        let ev = AuditContext {
            actor: "cli:signing-keys".into(),
            ..Default::default()
        }
        .event(now, "signing_key.rotated")
        .details(serde_json::json!({ "kid": new.kid }));
        store
            .add_signing_key(
                &new,
                now.plus_secs(config.signing_key_overlap_seconds),
                &[ev],
            )
            .await?;
        println!(
            "new signing key {} (nodes pick it up within {} s)",
            new.kid, config.signing_key_reload_seconds
        );
    }
    for k in store.list_signing_keys().await? {
        let until = k
            .publish_until
            .map_or("signing".to_string(), |t| format!("published until {t}"));
        println!(
            "{}  {}  created {}  {}",
            k.kid, k.algorithm, k.created_at, until
        );
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
    println!(
        "  token ttl {} s, secret lifetime {} s, rotation grace {} s{}",
        a.access_token_ttl_seconds,
        a.secret_lifetime_seconds,
        a.rotation_grace_seconds,
        if a.service_account {
            ", service account"
        } else {
            ""
        }
    );
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

async fn apps(cmd: AppsCommand) -> anyhow::Result<ExitCode> {
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
                ..Default::default()
            };
            let created: CreatedApp = c
                .fetch(
                    Method::POST,
                    &format!("/api/v1/orgs/{}/apps", c.org),
                    Some(&req),
                )
                .await?;
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
            let list: AppList = c
                .fetch::<(), _>(
                    Method::GET,
                    &format!("/api/v1/orgs/{}/apps?pageLimit=1000", c.org),
                    None,
                )
                .await?;
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
        AppsCommand::Show { api, app_id } => {
            let c = ApiClient::connect(&api).await?;
            let app: AppView = c
                .fetch::<(), _>(
                    Method::GET,
                    &format!("/api/v1/orgs/{}/apps/{app_id}", c.org),
                    None,
                )
                .await?;
            match api.output {
                OutputFormat::Json => print_json(&app)?,
                OutputFormat::Human => print_app(&app),
            }
        }
        AppsCommand::Delete { api, app_id } => {
            let c = ApiClient::connect(&api).await?;
            c.call::<(), serde_json::Value>(
                Method::DELETE,
                &format!("/api/v1/orgs/{}/apps/{app_id}", c.org),
                None,
            )
            .await?;
            if api.output == OutputFormat::Human {
                println!("deleted {app_id}");
            } else {
                print_json(&serde_json::json!({ "deleted": app_id }))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn secrets(cmd: SecretsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SecretsCommand::List { api, app_id } => {
            let c = ApiClient::connect(&api).await?;
            let list: SecretList = c
                .fetch::<(), _>(
                    Method::GET,
                    &format!("/api/v1/orgs/{}/apps/{app_id}/secrets", c.org),
                    None,
                )
                .await?;
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
            app_id,
            grace_seconds,
        } => {
            let c = ApiClient::connect(&api).await?;
            let n: NewSecretView = c
                .fetch(
                    Method::POST,
                    &format!("/api/v1/orgs/{}/apps/{app_id}/secrets/rotate", c.org),
                    Some(&RotateRequest { grace_seconds }),
                )
                .await?;
            print_new_secret(api.output, &n)?;
        }
        SecretsCommand::Regenerate { api, app_id, yes } => {
            if !yes {
                bail!("regenerating revokes every valid secret of the app at once; run again with --yes to confirm");
            }
            let c = ApiClient::connect(&api).await?;
            let n: NewSecretView = c
                .fetch::<(), _>(
                    Method::POST,
                    &format!("/api/v1/orgs/{}/apps/{app_id}/secrets/regenerate", c.org),
                    None,
                )
                .await?;
            print_new_secret(api.output, &n)?;
        }
        SecretsCommand::Finish { api, app_id } => {
            let c = ApiClient::connect(&api).await?;
            let f: FinishedRotation = c
                .fetch::<(), _>(
                    Method::POST,
                    &format!("/api/v1/orgs/{}/apps/{app_id}/secrets/finish", c.org),
                    None,
                )
                .await?;
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

fn print_destination(d: &DestinationView) {
    let where_ = d
        .queue_url
        .clone()
        .or_else(|| d.url.clone())
        .or_else(|| d.directory.clone())
        .unwrap_or_default();
    println!("{}  {:<7}  {}", d.notification_type, d.kind, where_);
}

async fn destinations(cmd: DestinationsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DestinationsCommand::Set {
            api,
            app_id,
            notification_type,
            sqs_queue_url,
            region,
            endpoint_url,
            webhook_url,
            directory,
        } => {
            let req = if let Some(q) = sqs_queue_url {
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
                bail!("give one of --sqs-queue-url, --webhook-url or --directory");
            };
            let c = ApiClient::connect(&api).await?;
            let d: DestinationView = c
                .fetch(
                    Method::PUT,
                    &format!(
                        "/api/v1/orgs/{}/apps/{app_id}/destinations/{}",
                        c.org,
                        notification_type.api_name()
                    ),
                    Some(&req),
                )
                .await?;
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
        DestinationsCommand::List { api, app_id } => {
            let c = ApiClient::connect(&api).await?;
            let list: DestinationList = c
                .fetch::<(), _>(
                    Method::GET,
                    &format!("/api/v1/orgs/{}/apps/{app_id}/destinations", c.org),
                    None,
                )
                .await?;
            match api.output {
                OutputFormat::Json => print_json(&list)?,
                OutputFormat::Human if list.items.is_empty() => println!("no destinations"),
                OutputFormat::Human => list.items.iter().for_each(print_destination),
            }
        }
        DestinationsCommand::Remove {
            api,
            app_id,
            notification_type,
        } => {
            let c = ApiClient::connect(&api).await?;
            c.call::<(), serde_json::Value>(
                Method::DELETE,
                &format!(
                    "/api/v1/orgs/{}/apps/{app_id}/destinations/{}",
                    c.org,
                    notification_type.api_name()
                ),
                None,
            )
            .await?;
            println!("removed the {} destination", notification_type.api_name());
        }
        DestinationsCommand::Test {
            api,
            app_id,
            notification_type,
        } => {
            let c = ApiClient::connect(&api).await?;
            let q: QueuedNotification = c
                .fetch::<(), _>(
                    Method::POST,
                    &format!(
                        "/api/v1/orgs/{}/apps/{app_id}/destinations/{}/test",
                        c.org,
                        notification_type.api_name()
                    ),
                    None,
                )
                .await?;
            match api.output {
                OutputFormat::Json => print_json(&q)?,
                OutputFormat::Human => println!(
                    "test notification {} queued; follow it with `rekey deliveries list --app {app_id}`",
                    q.notification_id
                ),
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

async fn deliveries(cmd: DeliveriesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DeliveriesCommand::List { api, app, state } => {
            let c = ApiClient::connect(&api).await?;
            let mut query = vec!["pageLimit=1000".to_string()];
            if let Some(a) = app {
                query.push(format!("appId={a}"));
            }
            if let Some(s) = state {
                query.push(format!("state={s}"));
            }
            let list: DeliveryList = c
                .fetch::<(), _>(
                    Method::GET,
                    &format!("/api/v1/orgs/{}/deliveries?{}", c.org, query.join("&")),
                    None,
                )
                .await?;
            match api.output {
                OutputFormat::Json => print_json(&list)?,
                OutputFormat::Human if list.items.is_empty() => println!("no deliveries"),
                OutputFormat::Human => list.items.iter().for_each(print_delivery),
            }
        }
        DeliveriesCommand::Retry { api, delivery_id } => {
            let c = ApiClient::connect(&api).await?;
            let d: DeliveryView = c
                .fetch::<(), _>(
                    Method::POST,
                    &format!("/api/v1/orgs/{}/deliveries/{delivery_id}/retry", c.org),
                    None,
                )
                .await?;
            match api.output {
                OutputFormat::Json => print_json(&d)?,
                OutputFormat::Human => print_delivery(&d),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn members(cmd: MembersCommand) -> anyhow::Result<ExitCode> {
    use rekey_proto::native::{AddMemberRequest, AddedMember, MemberView, SetRoleRequest};
    let print = |output: OutputFormat, m: &MemberView| -> anyhow::Result<()> {
        match output {
            OutputFormat::Json => print_json(m),
            OutputFormat::Human => {
                println!("{:<4}  {}  {}", m.kind, m.id, m.role);
                Ok(())
            }
        }
    };
    match cmd {
        MembersCommand::List { api } => {
            let c = ApiClient::connect(&api).await?;
            let list: Vec<MemberView> = c
                .fetch::<(), _>(
                    Method::GET,
                    &format!("/api/v1/orgs/{}/members", c.org),
                    None,
                )
                .await?;
            match api.output {
                OutputFormat::Json => print_json(&list)?,
                OutputFormat::Human => {
                    for m in &list {
                        print(api.output, m)?;
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
            let added: AddedMember = c
                .fetch(
                    Method::POST,
                    &format!("/api/v1/orgs/{}/members", c.org),
                    Some(&AddMemberRequest {
                        email,
                        display_name,
                        role,
                    }),
                )
                .await?;
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
            let m: MemberView = c
                .fetch(
                    Method::PUT,
                    &format!("/api/v1/orgs/{}/members/{}/{id}", c.org, kind.path()),
                    Some(&SetRoleRequest { role }),
                )
                .await?;
            print(api.output, &m)?;
        }
        MembersCommand::Remove { api, kind, id } => {
            let c = ApiClient::connect(&api).await?;
            c.call::<(), serde_json::Value>(
                Method::DELETE,
                &format!("/api/v1/orgs/{}/members/{}/{id}", c.org, kind.path()),
                None,
            )
            .await?;
            println!("removed {} {id}", kind.path());
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn api_tokens(cmd: ApiTokensCommand) -> anyhow::Result<ExitCode> {
    use rekey_proto::native::{ApiTokenList, ApiTokenView, CreateApiTokenRequest, CreatedApiToken};
    let line = |t: &ApiTokenView| {
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
    };
    match cmd {
        ApiTokensCommand::Create {
            api,
            name,
            expires_in,
        } => {
            let c = ApiClient::connect(&api).await?;
            let created: CreatedApiToken = c
                .fetch(
                    Method::POST,
                    &format!("/api/v1/orgs/{}/api-tokens", c.org),
                    Some(&CreateApiTokenRequest {
                        name,
                        expires_in_seconds: expires_in,
                    }),
                )
                .await?;
            match api.output {
                OutputFormat::Json => print_json(&created)?,
                OutputFormat::Human => {
                    line(&created.token);
                    println!("API token  {}", created.api_token);
                    println!("The API token is shown only now.");
                }
            }
        }
        ApiTokensCommand::List { api } => {
            let c = ApiClient::connect(&api).await?;
            let list: ApiTokenList = c
                .fetch::<(), _>(
                    Method::GET,
                    &format!("/api/v1/orgs/{}/api-tokens", c.org),
                    None,
                )
                .await?;
            match api.output {
                OutputFormat::Json => print_json(&list)?,
                OutputFormat::Human => list.items.iter().for_each(line),
            }
        }
        ApiTokensCommand::Revoke { api, token_id } => {
            let c = ApiClient::connect(&api).await?;
            let t: ApiTokenView = c
                .fetch::<(), _>(
                    Method::POST,
                    &format!("/api/v1/orgs/{}/api-tokens/{token_id}/revoke", c.org),
                    None,
                )
                .await?;
            match api.output {
                OutputFormat::Json => print_json(&t)?,
                OutputFormat::Human => line(&t),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn audit(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::List {
        api,
        app,
        action,
        since,
        until,
        limit,
    } = cmd;
    let c = ApiClient::connect(&api).await?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("pageLimit", &limit.to_string());
    for (k, v) in [
        ("appId", app),
        ("action", action),
        ("since", since),
        ("until", until),
    ] {
        if let Some(v) = v {
            query.append_pair(k, &v);
        }
    }
    let list: rekey_proto::native::AuditEventList = c
        .fetch::<(), _>(
            Method::GET,
            &format!("/api/v1/orgs/{}/audit-events?{}", c.org, query.finish()),
            None,
        )
        .await?;
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
