//! `rekey doctor`: checks a node's set-up and its cluster, and changes nothing.

use std::process::ExitCode;
use std::time::Duration;

use rekey_core::clock::{Clock, SystemClock, Timestamp};
use rekey_core::ops::signing_keys::{signing_at, successor_due_at, waiting_at};
use rekey_core::store::Store;
use rekey_server::startup::{configured_server_key, sqlite_file, NODE_REPORT_INTERVAL};
use rekey_store::SqlStore;
use serde::Serialize;

use super::server::load_config;
use crate::cli::{DoctorArgs, OutputFormat};

/// Clocks further apart than this make token times and leases unreliable.
const MAX_CLOCK_SKEW_MS: i64 = 2_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warning,
    Problem,
}

#[derive(Debug, Serialize)]
struct Check {
    check: &'static str,
    status: Status,
    detail: String,
}

#[derive(Default)]
struct Report {
    checks: Vec<Check>,
}

impl Report {
    fn add(&mut self, check: &'static str, status: Status, detail: impl Into<String>) {
        self.checks.push(Check {
            check,
            status,
            detail: detail.into(),
        });
    }
    fn ok(&mut self, check: &'static str, detail: impl Into<String>) {
        self.add(check, Status::Ok, detail);
    }
    fn warn(&mut self, check: &'static str, detail: impl Into<String>) {
        self.add(check, Status::Warning, detail);
    }
    fn problem(&mut self, check: &'static str, detail: impl Into<String>) {
        self.add(check, Status::Problem, detail);
    }
    fn has_problem(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Problem)
    }
}

pub(super) async fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.server)?;
    let mut report = Report::default();
    check(&config, args.url.as_deref(), &mut report).await;
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "ok": !report.has_problem(),
                "checks": report.checks,
            }))?
        ),
        OutputFormat::Human => {
            for c in &report.checks {
                let status = match c.status {
                    Status::Ok => "ok",
                    Status::Warning => "warning",
                    Status::Problem => "PROBLEM",
                };
                println!("{status:<8} {:<14} {}", c.check, c.detail);
            }
            if report.has_problem() {
                println!("\nrekey doctor found problems (marked PROBLEM above).");
            }
        }
    }
    Ok(if report.has_problem() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn check(config: &rekey_server::Config, url: Option<&str>, report: &mut Report) {
    let db_url = config.effective_database_url();
    let Some(store) = open_database(&db_url, report).await else {
        return;
    };
    if !check_schema(&store, report).await {
        return;
    }
    if check_server_key(config, &store, report).await {
        check_audit_chains(&store, report).await;
    }
    let now = SystemClock.now();
    let issuer = check_nodes(config, &store, now, report).await;
    check_signing_keys(config, &store, now, report).await;
    check_destinations(config, &store, report).await;
    if let Some(url) = url {
        check_running_node(url, issuer.as_deref(), &store, now, report).await;
    }
    store.close().await;
}

async fn open_database(url: &str, report: &mut Report) -> Option<SqlStore> {
    if let Some(file) = sqlite_file(url) {
        if !file.exists() {
            report.problem(
                "database",
                format!(
                    "no database at {} (give doctor the server's --config, --data-dir or \
                     --database-url)",
                    file.display()
                ),
            );
            return None;
        }
    }
    match SqlStore::connect(url, 2).await {
        Ok(store) => {
            report.ok("database", format!("{} is reachable", backend_name(url)));
            Some(store)
        }
        Err(e) => {
            report.problem(
                "database",
                format!("{} is unreachable: {}", backend_name(url), chain(&e)),
            );
            None
        }
    }
}

fn backend_name(url: &str) -> &'static str {
    if url.starts_with("sqlite") {
        "SQLite"
    } else {
        "PostgreSQL"
    }
}

/// The error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        // Many errors repeat their cause in their own text.
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Returns whether the schema is there at all (the later checks read it).
async fn check_schema(store: &SqlStore, report: &mut Report) -> bool {
    let status = match store.schema_status().await {
        Ok(s) => s,
        Err(e) => {
            report.problem(
                "schema",
                format!("cannot read the migrations: {}", chain(&e)),
            );
            return false;
        }
    };
    if let Some(refusal) = status.refusal() {
        report.problem("schema", refusal);
        return false;
    }
    if status.applied == 0 {
        report.problem(
            "schema",
            "the database has no schema yet: run `rekey migrate` (or start `rekey serve`)",
        );
        return false;
    }
    if !status.pending.is_empty() {
        let list: Vec<String> = status
            .pending
            .iter()
            .map(|m| format!("{} ({})", m.version, m.description))
            .collect();
        report.problem(
            "schema",
            format!(
                "migration(s) {} not applied: run `rekey migrate` with this release",
                list.join(", ")
            ),
        );
    } else if !status.newer.is_empty() {
        report.warn(
            "schema",
            format!(
                "the database is at migration {}, newer than this binary ({}); it runs \
                 against it, but upgrade it (a rolling upgrade is under way)",
                status.applied, status.known
            ),
        );
    } else {
        report.ok("schema", format!("migrated (migration {})", status.applied));
    }
    true
}

/// Returns whether the key matches (the audit chains can then be checked with it).
async fn check_server_key(
    config: &rekey_server::Config,
    store: &SqlStore,
    report: &mut Report,
) -> bool {
    let key = match configured_server_key(config) {
        Ok(Some(key)) => key,
        Ok(None) => {
            report.problem(
                "server key",
                format!(
                    "no server key: server_key is not set and {} does not exist",
                    config.data_dir.join("server.key").display()
                ),
            );
            return false;
        }
        Err(e) => {
            report.problem("server key", chain(e.as_ref()));
            return false;
        }
    };
    match store.key_check().await {
        Ok(Some(recorded)) if recorded == key.key_check() => {
            report.ok("server key", "matches the database");
            store.set_audit_key(key.audit_hasher());
            return true;
        }
        Ok(Some(_)) => report.problem(
            "server key",
            "this server key does not match the database: no secret, API token or signing key \
             would work with it (see \"Lost or wrong server key\" in docs/operations.md)",
        ),
        Ok(None) => report.warn(
            "server key",
            "the database has no key check yet (the next `rekey serve` records it)",
        ),
        Err(e) => report.problem("server key", chain(&e)),
    }
    false
}

async fn check_audit_chains(store: &SqlStore, report: &mut Report) {
    let chains = match store.list_audit_chains().await {
        Ok(c) => c,
        Err(e) => {
            report.problem("audit", chain(&e));
            return;
        }
    };
    let (mut events, mut broken) = (0, Vec::new());
    for c in &chains {
        match store.verify_audit_chain(c).await {
            Ok(r) => {
                events += r.events;
                if let Some(b) = r.broken {
                    let name = if c.is_empty() {
                        "the server's"
                    } else {
                        c.as_str()
                    };
                    let at = b
                        .event_id
                        .map_or_else(|| "its end".into(), |e| format!("event {e}"));
                    broken.push(format!("chain {name} at {at}: {}", b.reason));
                }
            }
            Err(e) => broken.push(chain(&e)),
        }
    }
    if broken.is_empty() {
        report.ok(
            "audit",
            format!("{} chain(s) intact, {events} linked events", chains.len()),
        );
    } else {
        report.problem("audit", broken.join("; "));
    }
}

/// Checks public_url and the clocks against every node seen lately; returns the issuer the
/// nodes agree on (or this config's).
async fn check_nodes(
    config: &rekey_server::Config,
    store: &SqlStore,
    now: Timestamp,
    report: &mut Report,
) -> Option<String> {
    let postgres = config.effective_database_url().starts_with("postgres");
    let configured = (!config.public_url.is_empty())
        .then(|| config.public_url.trim_end_matches('/').to_string());
    match (&configured, postgres) {
        (None, true) => report.problem(
            "public_url",
            "public_url is not set: with PostgreSQL every node must have the same one (it is \
             the token issuer)",
        ),
        (None, false) => report.ok("public_url", "not set: the issuer is the listen address"),
        (Some(_), _) => {}
    }
    let db_now = match store.database_now().await {
        Ok(t) => t,
        Err(e) => {
            report.problem("clock", chain(&e));
            return configured;
        }
    };
    let skew = now.as_millis() - db_now.as_millis();
    if skew.abs() > MAX_CLOCK_SKEW_MS {
        report.problem(
            "clock",
            format!("this machine's clock is {skew} ms off the database's"),
        );
    } else {
        report.ok("clock", format!("{skew} ms from the database's clock"));
    }
    // Nodes that reported within three intervals are running.
    let window = i64::try_from(NODE_REPORT_INTERVAL.as_secs() * 3).unwrap_or(90);
    let nodes = match store.list_nodes(db_now.plus_secs(-window)).await {
        Ok(n) => n,
        Err(e) => {
            report.problem("nodes", chain(&e));
            return configured;
        }
    };
    if nodes.is_empty() {
        report.warn(
            "nodes",
            "no node has reported in the last 90 s: is any node serving?",
        );
        return configured;
    }
    let mut urls: Vec<&str> = nodes.iter().map(|n| n.public_url.as_str()).collect();
    urls.sort_unstable();
    urls.dedup();
    if urls.len() > 1 {
        let by_node: Vec<String> = nodes
            .iter()
            .map(|n| format!("{} ({}) says {}", n.hostname, short(&n.id), n.public_url))
            .collect();
        report.problem(
            "public_url",
            format!(
                "the nodes do not agree on public_url, so they refuse each other's tokens: {}",
                by_node.join("; ")
            ),
        );
    } else if let Some(mine) = configured.as_deref().filter(|c| *c != urls[0]) {
        report.problem(
            "public_url",
            format!(
                "this configuration says {mine} but the running nodes say {}",
                urls[0]
            ),
        );
    } else {
        report.ok(
            "public_url",
            format!("{} on every node that reported ({})", urls[0], nodes.len()),
        );
    }
    let skewed: Vec<String> = nodes
        .iter()
        .filter(|n| n.clock_skew_ms.abs() > MAX_CLOCK_SKEW_MS)
        .map(|n| format!("{} ({}): {} ms", n.hostname, short(&n.id), n.clock_skew_ms))
        .collect();
    if skewed.is_empty() {
        report.ok(
            "node clocks",
            format!("{} node(s) within 2 s of the database", nodes.len()),
        );
    } else {
        report.problem(
            "node clocks",
            format!("clocks off the database's: {}", skewed.join("; ")),
        );
    }
    let mut versions: Vec<&str> = nodes.iter().map(|n| n.version.as_str()).collect();
    versions.sort_unstable();
    versions.dedup();
    if versions.len() > 1 {
        report.warn(
            "nodes",
            format!(
                "{} nodes run different releases ({}): finish the upgrade",
                nodes.len(),
                versions.join(", ")
            ),
        );
    } else {
        report.ok(
            "nodes",
            format!("{} node(s) serving, release {}", nodes.len(), versions[0]),
        );
    }
    Some(urls[0].to_string())
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

async fn check_signing_keys(
    config: &rekey_server::Config,
    store: &SqlStore,
    now: Timestamp,
    report: &mut Report,
) {
    let keys = match store.list_signing_keys().await {
        Ok(k) => k,
        Err(e) => {
            report.problem("signing keys", chain(&e));
            return;
        }
    };
    let Some(current) = signing_at(&keys, now) else {
        if keys.is_empty() {
            report.warn(
                "signing keys",
                "none yet: the first `rekey serve` makes the first one",
            );
        } else {
            report.problem("signing keys", "no key signs now");
        }
        return;
    };
    let timing = config.signing_key_timing();
    let waiting = waiting_at(&keys, now);
    let mut problems = Vec::new();
    if let (Some(due), None) = (successor_due_at(&keys, now, timing), waiting) {
        if due <= now {
            problems.push(format!(
                "signing key {} has no pre-published successor: signing_key_rotation_days wanted \
                 one published at {} (is a worker node running its sweeper?)",
                current.kid,
                due.to_rfc3339()
            ));
        }
    }
    // A replaced key must stay published until every token it signed has expired.
    let longest_ttl = rekey_core::apps::MAX_TOKEN_TTL_SECS
        .max(config.default_access_token_ttl_seconds)
        .max(config.user_token_ttl_seconds);
    for key in &keys {
        let Some(until) = key.publish_until else {
            continue;
        };
        let stopped = keys
            .iter()
            .filter(|k| k.signs_from() > key.signs_from())
            .map(|k| k.signs_from())
            .min();
        if let Some(stopped) = stopped {
            let last_token_expires = stopped.plus_secs(longest_ttl);
            if until < last_token_expires && now < last_token_expires {
                problems.push(format!(
                    "signing key {} stops being published at {}, before the last token it \
                     signed expires ({})",
                    key.kid,
                    until.to_rfc3339(),
                    last_token_expires.to_rfc3339()
                ));
            }
        }
    }
    if problems.is_empty() {
        let next = match (waiting, successor_due_at(&keys, now, timing)) {
            (Some(w), _) => format!(
                "; {} is published and signs from {}",
                w.kid,
                w.signs_from().to_rfc3339()
            ),
            (None, Some(due)) => format!(
                "; the next rotation publishes a key at {}",
                due.to_rfc3339()
            ),
            (None, None) => "; no scheduled rotation (signing_key_rotation_days = 0)".into(),
        };
        report.ok(
            "signing keys",
            format!(
                "{} signs (since {}){next}",
                current.kid,
                current.signs_from().to_rfc3339()
            ),
        );
    } else {
        report.problem("signing keys", problems.join("; "));
    }
}

async fn check_destinations(config: &rekey_server::Config, store: &SqlStore, report: &mut Report) {
    let destinations = match store.list_all_destinations(1000).await {
        Ok(d) => d,
        Err(e) => {
            report.problem("destinations", chain(&e));
            return;
        }
    };
    if destinations.is_empty() {
        report.ok("destinations", "none set");
        return;
    }
    // Many apps share a queue or a receiver: each target (of each org, for spool
    // directories) is probed once.
    let mut targets: Vec<(rekey_core::notify::Target, rekey_core::model::OrgId, usize)> =
        Vec::new();
    for d in &destinations {
        let org = match store.get_app(d.app_id).await {
            Ok(Some(app)) => app.org_id,
            _ => continue,
        };
        match targets
            .iter_mut()
            .find(|(t, o, _)| *t == d.target && *o == org)
        {
            Some((_, _, apps)) => *apps += 1,
            None => targets.push((d.target.clone(), org, 1)),
        }
    }
    let timeout = Duration::from_secs(config.delivery_timeout_seconds.clamp(1, 10));
    let mut failed = Vec::new();
    let spool_root = config.spool_root();
    for (target, org, apps) in &targets {
        let probe = rekey_dispatch::sinks::probe(target, *org, &spool_root, timeout);
        if let Err(e) = probe.await {
            failed.push(format!("{} ({apps} app(s)): {e}", describe(target)));
        }
    }
    if failed.is_empty() {
        report.ok(
            "destinations",
            format!("{} destination(s) answer", targets.len()),
        );
    } else {
        report.problem("destinations", failed.join("; "));
    }
}

fn describe(target: &rekey_core::notify::Target) -> String {
    use rekey_core::notify::Target;
    match target {
        Target::Sqs { queue_url, .. } => format!("SQS {queue_url}"),
        // Host and port only: a URL's user part or query may hold a credential.
        Target::Webhook { url } => match rekey_core::notify::url_host_port(url) {
            Some((host, port)) => format!("webhook {host}:{port}"),
            None => "webhook (an unreadable URL)".into(),
        },
        Target::File { directory } => format!("file {directory}"),
        Target::SecretsManager { secret_id, .. } => format!("Secrets Manager {secret_id}"),
    }
}

async fn check_running_node(
    url: &str,
    issuer: Option<&str>,
    store: &SqlStore,
    now: Timestamp,
    report: &mut Report,
) {
    let base = url.trim_end_matches('/');
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            report.problem("node", e.to_string());
            return;
        }
    };
    match http.get(format!("{base}/readyz")).send().await {
        Ok(r) if r.status().is_success() => report.ok("node", format!("{base} is ready")),
        Ok(r) => report.problem(
            "node",
            format!("{base}/readyz answers HTTP {}", r.status().as_u16()),
        ),
        Err(e) => {
            report.problem("node", format!("{base} does not answer: {}", chain(&e)));
            return;
        }
    }
    let metadata: Option<serde_json::Value> = match http
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .send()
        .await
    {
        Ok(r) => r.json().await.ok(),
        Err(_) => None,
    };
    let served = metadata
        .as_ref()
        .and_then(|m| m.get("issuer"))
        .and_then(|i| i.as_str())
        .map(str::to_string);
    match (served.as_deref(), issuer) {
        (Some(s), Some(i)) if s == i => report.ok("node issuer", s.to_string()),
        (Some(s), Some(i)) => report.problem(
            "node issuer",
            format!("{base} issues tokens as {s}, the cluster as {i}"),
        ),
        (Some(s), None) => report.ok("node issuer", s.to_string()),
        (None, _) => report.problem("node issuer", format!("{base} serves no server metadata")),
    }
    let jwks: Option<serde_json::Value> = match http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
    {
        Ok(r) => r.json().await.ok(),
        Err(_) => None,
    };
    let published: Vec<String> = jwks
        .as_ref()
        .and_then(|j| j.get("keys"))
        .and_then(|k| k.as_array())
        .map(|keys| {
            keys.iter()
                .filter_map(|k| k.get("kid").and_then(|v| v.as_str()).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let stored = store.list_signing_keys().await.unwrap_or_default();
    let wanted: Vec<&str> = signing_at(&stored, now)
        .into_iter()
        .chain(waiting_at(&stored, now))
        .map(|k| k.kid.as_str())
        .collect();
    let missing: Vec<&&str> = wanted
        .iter()
        .filter(|k| !published.iter().any(|p| p == **k))
        .collect();
    if missing.is_empty() {
        report.ok("node jwks", format!("publishes {} key(s)", published.len()));
    } else {
        report.problem(
            "node jwks",
            format!(
                "{base} does not publish {:?} yet (it reloads keys every \
                 signing_key_reload_seconds)",
                missing
            ),
        );
    }
}
