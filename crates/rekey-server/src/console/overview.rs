//! The console's first page: the org at a glance, each line linking to its app. Rotations
//! in progress (with the previous secret's last use), current secrets expiring within 30 days, and
//! notifications that died. Each list is capped; the app list is where everything is.

use std::collections::HashMap;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use rekey_core::error::{CoreResult, OpError};
use rekey_core::model::{AppId, Secret};
use rekey_core::notify::DeliveryState;
use rekey_core::policy::Action;
use rekey_core::store::Page;

use super::apps::{used_recently, when};
use super::{op_error_page, render, Chrome, Session};
use crate::state::SharedState;

/// Rows per list on the overview.
const LIST_LIMIT: u32 = 20;

struct SecretLine {
    app_id: String,
    app_name: String,
    hint: String,
    state: &'static str,
    expires: String,
    last_used: String,
    recently_used: bool,
}

struct DeadLine {
    app_id: String,
    app_name: String,
    notification_type: &'static str,
    created: String,
    last_error: String,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    chrome: Chrome,
    org_name: String,
    app_count: u64,
    rotating: Vec<SecretLine>,
    expiring: Vec<SecretLine>,
    dead: Vec<DeadLine>,
}

pub(super) async fn overview(State(state): State<SharedState>, session: Session) -> Response {
    match page(&state, &session).await {
        Ok(page) => render(StatusCode::OK, &page),
        Err(e) => op_error_page(e),
    }
}

async fn page(state: &SharedState, session: &Session) -> Result<OverviewPage, OpError> {
    let org = session.signed_in.org.id;
    state
        .ops
        .authorize(&session.signed_in.actor, org, Action::Read)
        .await?;
    let now = state.now();
    let store = &state.store;
    let (_, app_count) = store
        .search_apps(org, None, Page { start: 0, limit: 1 })
        .await?;
    let rotating = store.previous_secrets_in_org(org, now, LIST_LIMIT).await?;
    let expiring = store
        .secrets_expiring_in_org(org, now, now.plus_secs(30 * 86_400), LIST_LIMIT)
        .await?;
    let dead = store
        .list_deliveries(
            org,
            None,
            Some(DeliveryState::Dead),
            Page {
                start: 0,
                limit: LIST_LIMIT,
            },
        )
        .await?;
    let mut ids: Vec<AppId> = rotating.iter().chain(&expiring).map(|s| s.app_id).collect();
    ids.extend(dead.iter().map(|d| d.app_id));
    let names = app_names(state, ids).await?;
    let name = |id: AppId| {
        names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| "(deleted app)".into())
    };
    let line = |s: &Secret| SecretLine {
        app_id: s.app_id.to_string(),
        app_name: name(s.app_id),
        hint: s.hint.clone(),
        state: s.state.as_str(),
        expires: when(s.expires_at),
        last_used: when(s.last_used_at),
        recently_used: s.last_used_at.is_some_and(|t| used_recently(t, now)),
    };
    Ok(OverviewPage {
        chrome: session.chrome("overview", None),
        org_name: session.signed_in.org.name.clone(),
        app_count,
        rotating: rotating.iter().map(line).collect(),
        expiring: expiring.iter().map(line).collect(),
        dead: dead
            .iter()
            .map(|d| DeadLine {
                app_id: d.app_id.to_string(),
                app_name: name(d.app_id),
                notification_type: d.notification_type.as_str(),
                created: when(Some(d.created_at)),
                last_error: d.last_error.clone().unwrap_or_default(),
            })
            .collect(),
    })
}

/// The names of at most three capped lists' apps (one read each, at most 60).
async fn app_names(state: &SharedState, mut ids: Vec<AppId>) -> CoreResult<HashMap<AppId, String>> {
    ids.sort();
    ids.dedup();
    let mut names = HashMap::new();
    for id in ids {
        if let Some(app) = state.store.get_app(id).await? {
            names.insert(id, app.name);
        }
    }
    Ok(names)
}
