//! Command-line definitions (clap). Behaviour lives in `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "rekey",
    version,
    about = "Rekey: an OAuth 2.0 authorization server for machine-to-machine apps, built around zero-downtime client-secret rotation",
    propagate_version = true
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the server (SQLite in ./data by default).
    Serve(ServerArgs),
    /// Apply pending database migrations and exit.
    Migrate(ServerArgs),
    /// Create the first organization, its owner and an API token (printed once).
    Init(InitArgs),
    /// Print a one-time link that signs a user in to the console (works once, for 15
    /// minutes; works on the database directly, like `init`).
    ConsoleLink(ConsoleLinkArgs),
    /// Exit 0 if the server answers /readyz, 1 otherwise (for container health checks).
    Healthcheck(HealthcheckArgs),
    /// Print the commented default configuration.
    DefaultConfig,
    /// Print a shell completion script, e.g. `rekey completions bash > /etc/bash_completion.d/rekey`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Rotate an SP-API application's client secret end to end, as the SP-API tutorial does:
    /// token with the rotation scope, rotate, receive the new secret from the SQS queue,
    /// verify it, write it to a sink, delete the message. Against Rekey or the real SP-API.
    Rotate(Box<RotateArgs>),
    /// Manage token signing keys (works on the database directly).
    #[command(subcommand)]
    SigningKeys(SigningKeysCommand),
    /// The server key (it keys every secret hash and seals the signing keys).
    #[command(subcommand)]
    ServerKey(ServerKeyCommand),
    /// Server administrators: users who may rotate the signing keys through the API (works on
    /// the database directly; `rekey init` makes its first user one).
    #[command(subcommand)]
    ServerAdmins(ServerAdminsCommand),
    /// Check a node's set-up and the cluster it is part of: the database and its schema, the
    /// server key, every node's public_url and clock, the destinations, the signing keys.
    /// Exits 1 when it finds a problem.
    Doctor(DoctorArgs),
    /// Move a whole database, e.g. from the embedded SQLite to PostgreSQL.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Manage applications (OAuth clients) through the management API.
    #[command(subcommand)]
    Apps(AppsCommand),
    /// Inspect, rotate, regenerate and finish client secrets through the management API.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Manage the organization's members (users and service accounts) and their roles.
    #[command(subcommand)]
    Members(MembersCommand),
    /// Read the organization's audit trail (owners and admins).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage your API tokens (owners and admins see and revoke everyone's).
    #[command(subcommand)]
    ApiTokens(ApiTokensCommand),
    /// Set where an app's notifications go (its Notification Preferences).
    #[command(subcommand)]
    Destinations(DestinationsCommand),
    /// See the delivery of notifications and retry dead ones.
    #[command(subcommand)]
    Deliveries(DeliveriesCommand),
    /// Keep one application's secret current on this host: receive each new secret (SQS or
    /// webhook), verify it, write it where the service reads it, run a reload hook, and only
    /// then acknowledge it. Runs until stopped; logs no secret.
    Agent(Box<AgentArgs>),
    /// The organization's default rotation policy (each app may override it with
    /// `rekey apps update`).
    #[command(subcommand)]
    RotationPolicy(RotationPolicyCommand),
}

/// Where the server's configuration comes from.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct ServerArgs {
    /// A TOML config file (see `rekey default-config`).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long)]
    pub listen: Option<String>,
    /// Database URL (sqlite://... or postgres://...). Default: SQLite in the data directory.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Directory for the SQLite database and the server key.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Name of the first organization.
    #[arg(long, default_value = "default")]
    pub org_name: String,
    /// Email of the owner user.
    #[arg(long)]
    pub email: String,
    /// Display name of the owner user (default: the email).
    #[arg(long)]
    pub display_name: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub(crate) struct ConsoleLinkArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Email of the user to sign in.
    #[arg(long)]
    pub email: String,
    /// The organization to sign in to (needed when the user is a member of several).
    #[arg(long)]
    pub org: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub(crate) struct HealthcheckArgs {
    /// Base URL of the server.
    #[arg(long, env = "REKEY_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServerKeyCommand {
    /// Print a new random server key (base64), e.g. one for every node of a cluster:
    /// `rekey server-key generate > server.key`. Give it to a database before its first start;
    /// a database keeps the key it was set up with.
    Generate,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServerAdminsCommand {
    /// List the server administrators.
    List(ServerArgs),
    /// Make a user (by email) a server administrator.
    Add(ServerAdminArgs),
    /// Make a user (by email) no longer a server administrator.
    Remove(ServerAdminArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ServerAdminArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The user's email.
    #[arg(long)]
    pub email: String,
}

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// A running node to check too (its readiness, issuer and JWKS), e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub url: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub(crate) enum StoreCommand {
    /// Copy every record (orgs, users, apps, secret hashes, signing keys, destinations, pending
    /// deliveries, audit events, ...) from one database to a new, empty one, then compare the
    /// counts. Stop every node first. The copy keeps the server key: use the same one after.
    Copy(StoreCopyArgs),
}

#[derive(Debug, Args)]
pub(crate) struct StoreCopyArgs {
    /// The database to copy, e.g. sqlite://./data/rekey.db.
    #[arg(long, env = "REKEY_COPY_FROM")]
    pub from: String,
    /// The new database, e.g. postgres://rekey@db/rekey: migrated here, and it must be empty.
    #[arg(long, env = "REKEY_COPY_TO")]
    pub to: String,
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SigningKeysCommand {
    /// List signing keys and until when each is published.
    List(ServerArgs),
    /// Add a new signing key: published now, signing after signing_key_prepublish_seconds;
    /// the current one stays published for signing_key_overlap_seconds after that.
    Rotate(ServerArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    Human,
    Json,
}

/// How to reach and authenticate to the management API.
#[derive(Debug, Args, Clone)]
pub(crate) struct ApiArgs {
    /// Base URL of the server; default: the `public_url` (else the `listen` address) of
    /// --config, else http://127.0.0.1:8080.
    #[arg(long, env = "REKEY_URL", global = true)]
    pub url: Option<String>,
    /// The server's configuration file, to find the server's URL in.
    #[arg(long, global = true)]
    pub config: Option<std::path::PathBuf>,
    /// A user API token (from `rekey init` or an admin). Prefer the environment variable.
    #[arg(long, env = "REKEY_API_TOKEN", hide_env_values = true, global = true)]
    pub api_token: Option<String>,
    /// Organization id; default: the organization of the API token.
    #[arg(long, env = "REKEY_ORG", global = true)]
    pub org: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Human, global = true)]
    pub output: OutputFormat,
}

impl ApiArgs {
    /// The server's base URL: `--url`/`REKEY_URL`, else the config file's `public_url` or
    /// `listen` (an unspecified listen address means this host), else the default port here.
    pub(crate) fn base_url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.url {
            return Ok(url.trim_end_matches('/').to_string());
        }
        let Some(path) = &self.config else {
            return Ok("http://127.0.0.1:8080".into());
        };
        let config = rekey_server::Config::load(Some(path), &Default::default())?;
        if !config.public_url.is_empty() {
            return Ok(config.public_url.trim_end_matches('/').to_string());
        }
        let mut listen = config.listen;
        if listen.ip().is_unspecified() {
            listen.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        Ok(format!("http://{listen}"))
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum AppsCommand {
    /// Create an app; prints its client id and first secret (shown once).
    Create {
        #[command(flatten)]
        api: ApiArgs,
        /// Display name.
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// Client id to use instead of a generated one.
        #[arg(long)]
        client_id: Option<String>,
        /// Allowed scope (repeat for several).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Access-token lifetime in seconds.
        #[arg(long)]
        token_ttl: Option<i64>,
        /// Lifetime of each secret in seconds (0 = never expires).
        #[arg(long)]
        secret_lifetime: Option<i64>,
        /// Make the app a service account with this role (org_admin, developer, org_member).
        #[arg(long)]
        service_account_role: Option<String>,
        /// A resource server the app may ask tokens for (`aud`; repeat for several). The
        /// first is the audience of tokens whose request names none.
        #[arg(long = "audience")]
        audiences: Vec<String>,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Change an app's settings; what is not given stays as it is.
    Update {
        #[command(flatten)]
        api: ApiArgs,
        /// The app: its id or its client id.
        app: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Allowed scope (repeat for several; replaces the app's scopes).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Access-token lifetime in seconds.
        #[arg(long)]
        token_ttl: Option<i64>,
        /// Lifetime of each new secret in seconds (0 = never expires).
        #[arg(long)]
        secret_lifetime: Option<i64>,
        /// How long the old secret keeps working after a native or CSP rotation, in seconds.
        #[arg(long)]
        rotation_grace: Option<i64>,
        /// Audience the app may ask tokens for (repeat for several; replaces the app's
        /// audiences; the first is the default).
        #[arg(long = "audience", conflicts_with = "no_audiences")]
        audiences: Vec<String>,
        /// Remove every audience: tokens carry no `aud` again.
        #[arg(long)]
        no_audiences: bool,
        #[command(flatten)]
        policy: PolicyArgs,
        /// Clear the app's own rotation policy: it follows the org's default (combine with
        /// the two policy options to set some fields again).
        #[arg(long)]
        inherit_org_policy: bool,
    },
    /// List the org's apps.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show one app.
    Show {
        #[command(flatten)]
        api: ApiArgs,
        /// The app: its id or its client id.
        app: String,
    },
    /// Delete an app and its secrets.
    Delete {
        #[command(flatten)]
        api: ApiArgs,
        /// The app: its id or its client id.
        app: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SecretsCommand {
    /// List an app's secrets: state, hint, expiry, last use (never the secret).
    List {
        #[command(flatten)]
        api: ApiArgs,
        /// The app: its id or its client id.
        app: String,
    },
    /// Rotate: a new current secret (printed once); the old one keeps working for the grace
    /// period. Refused while a previous secret is still valid.
    Rotate {
        #[command(flatten)]
        api: ApiArgs,
        /// The app: its id or its client id.
        app: String,
        /// How long the old secret keeps working (default: the app's rotation grace).
        #[arg(long)]
        grace_seconds: Option<i64>,
    },
    /// Regenerate: revoke every valid secret now and make one new secret (printed once).
    Regenerate {
        #[command(flatten)]
        api: ApiArgs,
        /// The app: its id or its client id.
        app: String,
        /// Confirm: clients still using the old secrets stop working at once.
        #[arg(long)]
        yes: bool,
    },
    /// Finish a rotation: revoke the previous secret now.
    Finish {
        #[command(flatten)]
        api: ApiArgs,
        /// The app: its id or its client id.
        app: String,
    },
}

/// Which notification a destination receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum NotificationKind {
    /// APPLICATION_OAUTH_CLIENT_NEW_SECRET: the new secret after a rotation.
    NewSecret,
    /// APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY: warnings before the current secret expires.
    SecretExpiry,
}

impl NotificationKind {
    pub(crate) fn api_name(self) -> &'static str {
        match self {
            NotificationKind::NewSecret => "APPLICATION_OAUTH_CLIENT_NEW_SECRET",
            NotificationKind::SecretExpiry => "APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY",
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum DestinationsCommand {
    /// Set (replace) the destination of one notification type. Give exactly one of
    /// --sqs-queue-url, --webhook-url, --directory, --secrets-manager-secret-id. A webhook's
    /// signing secret is printed once.
    Set {
        #[command(flatten)]
        api: ApiArgs,
        /// The app: its id or its client id.
        app: String,
        #[arg(long = "type", value_enum, default_value_t = NotificationKind::NewSecret)]
        notification_type: NotificationKind,
        /// SQS queue URL (credentials come from the server's standard AWS chain).
        #[arg(long, conflicts_with_all = ["webhook_url", "directory", "secrets_manager_secret_id"])]
        sqs_queue_url: Option<String>,
        /// An AWS Secrets Manager secret (name or ARN) that receives each new secret as its
        /// AWSCURRENT version (new secrets only; --region unless the ARN names it).
        #[arg(long, conflicts_with_all = ["webhook_url", "directory"])]
        secrets_manager_secret_id: Option<String>,
        /// AWS region of the queue; default: the one its URL names (give it for a URL that
        /// names none, such as a local SQS-compatible server's).
        #[arg(long)]
        region: Option<String>,
        /// AWS endpoint override, for SQS- or Secrets Manager-compatible servers.
        #[arg(long)]
        endpoint_url: Option<String>,
        /// HTTPS URL that receives Standard Webhooks.
        #[arg(long, conflicts_with = "directory")]
        webhook_url: Option<String>,
        /// A spool directory below the server's file_destination_root (e.g. my-app).
        #[arg(long)]
        directory: Option<String>,
    },
    /// List an app's destinations.
    List {
        #[command(flatten)]
        api: ApiArgs,
        /// The app: its id or its client id.
        app: String,
    },
    /// Remove the destination of one notification type.
    Remove {
        #[command(flatten)]
        api: ApiArgs,
        /// The app: its id or its client id.
        app: String,
        #[arg(long = "type", value_enum, default_value_t = NotificationKind::NewSecret)]
        notification_type: NotificationKind,
    },
    /// Send a test notification (no secret in it) to check the destination receives.
    Test {
        #[command(flatten)]
        api: ApiArgs,
        /// The app: its id or its client id.
        app: String,
        #[arg(long = "type", value_enum, default_value_t = NotificationKind::NewSecret)]
        notification_type: NotificationKind,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeliveriesCommand {
    /// List deliveries, newest first.
    List {
        #[command(flatten)]
        api: ApiArgs,
        /// Only this app's (its id or its client id).
        #[arg(long)]
        app: Option<String>,
        /// Only deliveries in this state: pending, delivered or dead.
        #[arg(long)]
        state: Option<String>,
    },
    /// Give a dead delivery a new retry budget.
    Retry {
        #[command(flatten)]
        api: ApiArgs,
        /// Delivery id (UUID).
        delivery_id: String,
    },
}

/// A member is a user or an app (a service account).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum MemberKind {
    User,
    App,
}

impl MemberKind {
    pub(crate) fn path(self) -> &'static str {
        match self {
            MemberKind::User => "user",
            MemberKind::App => "app",
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum MembersCommand {
    /// List members with their roles.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Add a user by email with a role; a new user's API token is printed once.
    Add {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        email: String,
        /// org_owner, org_admin, developer or org_member.
        #[arg(long)]
        role: String,
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Set the role of a user, or of an app (making it a service account).
    SetRole {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(value_enum)]
        kind: MemberKind,
        /// User or app id (UUID).
        id: String,
        /// org_owner, org_admin, developer or org_member.
        role: String,
    },
    /// Remove a member (an app stops being a service account).
    Remove {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(value_enum)]
        kind: MemberKind,
        /// User or app id (UUID).
        id: String,
    },
}

/// `rekey rotate`. Exit codes: 0 done; 3 credentials refused or no rotation scope; 4 not
/// enrolled; 5 rate limited; 6 no notification in time; 7 queue error; 8 sink error; 9 the new
/// secret did not work; 10 rotation in progress but no notification; 11 the rotation request
/// failed with an unknown outcome. After any failure the old secret still works, and running
/// the command again is safe: it picks up a notification already in the queue.
#[derive(Debug, Args)]
pub(crate) struct RotateArgs {
    /// Client id of the application to rotate.
    #[arg(long, env = "REKEY_CLIENT_ID")]
    pub client_id: String,
    /// File holding the current client secret (else REKEY_CLIENT_SECRET).
    #[arg(long)]
    pub client_secret_file: Option<PathBuf>,
    /// The current client secret. Prefer --client-secret-file: arguments show in `ps`.
    #[arg(long, env = "REKEY_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// The LWA token endpoint (Amazon's by default; for Rekey: <url>/auth/o2/token).
    #[arg(long, default_value = rekey_client::LWA_TOKEN_URL)]
    pub token_url: String,
    /// The SP-API base URL (Amazon North America by default; for Rekey: its URL).
    #[arg(long, default_value = "https://sellingpartnerapi-na.amazon.com")]
    pub api_url: String,
    /// The SQS queue registered for APPLICATION_OAUTH_CLIENT_NEW_SECRET.
    #[arg(long)]
    pub queue_url: String,
    /// AWS region of the queue; default: the one its URL names, else AWS_REGION, else
    /// us-east-1.
    #[arg(long)]
    pub region: Option<String>,
    /// SQS endpoint override, for SQS-compatible servers.
    #[arg(long)]
    pub sqs_endpoint_url: Option<String>,
    /// How long to wait for the notification.
    #[arg(long, default_value_t = 300)]
    pub timeout_seconds: u64,
    /// Write the new secret to this file (atomically, mode 0600).
    #[arg(long, conflicts_with = "env_file")]
    pub write_file: Option<PathBuf>,
    /// Set KEY=<new secret> in this env file (the line is replaced in place, or added).
    #[arg(long)]
    pub env_file: Option<PathBuf>,
    /// The key of --env-file.
    #[arg(long, default_value = "CLIENT_SECRET")]
    pub env_key: String,
    /// Check credentials, scope, queue access and sink without rotating.
    #[arg(long)]
    pub dry_run: bool,
    /// json prints a result object on stdout (with the new secret when no file sink is given).
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ApiTokensCommand {
    /// Create an API token for yourself; printed once.
    Create {
        #[command(flatten)]
        api: ApiArgs,
        /// What the token is for.
        #[arg(long)]
        name: String,
        /// Lifetime in seconds (default: no expiry).
        #[arg(long)]
        expires_in: Option<i64>,
    },
    /// List API tokens (metadata only).
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Revoke an API token: it and the access tokens minted with it stop working.
    Revoke {
        #[command(flatten)]
        api: ApiArgs,
        /// Token id (UUID).
        token_id: String,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct AgentArgs {
    /// Client id of the application.
    #[arg(long, env = "REKEY_CLIENT_ID")]
    pub client_id: String,
    /// Where a new secret is verified by getting a token with it (Rekey:
    /// <url>/oauth2/token; Amazon: https://api.amazon.com/auth/o2/token).
    #[arg(long)]
    pub token_url: String,
    /// The scope asked for when verifying (Login with Amazon needs one, e.g.
    /// sellingpartnerapi::client_credential:rotation).
    #[arg(long)]
    pub verify_scope: Option<String>,
    /// Receive from this SQS queue (the app's APPLICATION_OAUTH_CLIENT_NEW_SECRET destination).
    #[arg(
        long,
        required_unless_present = "webhook_listen",
        conflicts_with = "webhook_listen"
    )]
    pub queue_url: Option<String>,
    /// AWS region of the queue; default: the one its URL names, else AWS_REGION, else us-east-1.
    #[arg(long)]
    pub region: Option<String>,
    /// SQS endpoint override, for SQS-compatible servers.
    #[arg(long)]
    pub sqs_endpoint_url: Option<String>,
    /// How long a received message stays hidden from other receivers while it is applied
    /// (a message the agent could not finish comes back after this).
    #[arg(long, default_value_t = 60)]
    pub visibility_timeout_seconds: i32,
    /// Receive Rekey's webhook deliveries on this address instead (e.g. 0.0.0.0:9300).
    #[arg(long, requires = "webhook_secret_file")]
    pub webhook_listen: Option<std::net::SocketAddr>,
    /// File holding the webhook destination's signing secret (whsec_...), as
    /// `rekey destinations set` printed it.
    #[arg(long)]
    pub webhook_secret_file: Option<PathBuf>,
    /// Write each new secret to this file (atomically, mode 0600).
    #[arg(long, conflicts_with_all = ["env_file", "stdout"], required_unless_present_any = ["env_file", "stdout"])]
    pub write_file: Option<PathBuf>,
    /// Set KEY=<new secret> in this env file (the line is replaced in place, or added).
    #[arg(long, conflicts_with = "stdout")]
    pub env_file: Option<PathBuf>,
    /// The key of --env-file.
    #[arg(long, default_value = "CLIENT_SECRET")]
    pub env_key: String,
    /// Print each new secret on a line of standard output (for a pipe); needs --state-file.
    #[arg(long, requires = "state_file")]
    pub stdout: bool,
    /// Run this command (with `sh -c`) after each new secret is written, e.g.
    /// 'systemctl reload my-app'. The secret is not in its arguments or environment.
    #[arg(long)]
    pub on_change: Option<String>,
    /// Send --signal to this process after each new secret is written.
    #[arg(long, conflicts_with = "signal_pid_file")]
    pub signal_pid: Option<i32>,
    /// Send --signal to the process whose id this file holds (read each time).
    #[arg(long)]
    pub signal_pid_file: Option<PathBuf>,
    /// The signal: HUP, USR1, USR2, TERM or INT.
    #[arg(long, default_value = "HUP")]
    pub signal: String,
    /// Where the agent records what it applied (never the secret); default: beside the file,
    /// `.<name>.rekey-agent.json`.
    #[arg(long)]
    pub state_file: Option<PathBuf>,
    /// Serve /healthz and /metrics on this address.
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Log as JSON lines.
    #[arg(long)]
    pub log_json: bool,
}

/// A rotation policy's two settings, in seconds (0 turns one off).
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct PolicyArgs {
    /// Rotate automatically this many seconds before the current secret expires (the new
    /// secret goes to the app's new-secret destination). 0: off.
    #[arg(long, value_name = "SECONDS")]
    pub rotate_before_expiry: Option<i64>,
    /// Retire the previous secret once the new one has been used and the previous one has
    /// not been used for this many seconds. 0: off.
    #[arg(long, value_name = "SECONDS")]
    pub retire_when_unused: Option<i64>,
}

impl PolicyArgs {
    pub(crate) fn is_empty(&self) -> bool {
        self.rotate_before_expiry.is_none() && self.retire_when_unused.is_none()
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum RotationPolicyCommand {
    /// Show the organization's default rotation policy.
    Show {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Change the organization's default (owners and admins); what is not given stays.
    Set {
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        policy: PolicyArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// List audit events, newest first.
    List {
        #[command(flatten)]
        api: ApiArgs,
        /// Only this app's events (its id or its client id).
        #[arg(long)]
        app: Option<String>,
        /// Only this action, e.g. secret.rotated.
        #[arg(long)]
        action: Option<String>,
        /// Only events at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Only events before this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// At most this many events.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Check the organization's audit hash chain: every event is linked to the one before
    /// it, so an event edited, deleted, inserted or reordered in the database shows here.
    /// Exits 1 when the chain is broken.
    Verify {
        #[command(flatten)]
        api: ApiArgs,
    },
}
