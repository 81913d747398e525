//! The native management API under `/api/v1`. Handlers are thin: authorize, read the clock
//! once, call the store or a domain function, map to wire types.

mod apps;
mod orgs;
mod views;

use axum::routing::{get, post};
use axum::Router;

use crate::state::SharedState;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/api/v1/orgs/{org_id}", get(orgs::get_org))
        .route(
            "/api/v1/orgs/{org_id}/members",
            get(orgs::list_members).post(orgs::add_member),
        )
        .route("/api/v1/orgs/{org_id}/audit-events", get(orgs::list_audit))
        .route(
            "/api/v1/orgs/{org_id}/apps",
            get(apps::list_apps).post(apps::create_app),
        )
        .route(
            "/api/v1/orgs/{org_id}/apps/{app_id}",
            get(apps::get_app)
                .patch(apps::update_app)
                .delete(apps::delete_app),
        )
        .route(
            "/api/v1/orgs/{org_id}/apps/{app_id}/secrets",
            get(apps::list_secrets),
        )
        .route(
            "/api/v1/orgs/{org_id}/apps/{app_id}/secrets/{secret_id}/revoke",
            post(apps::revoke_secret),
        )
}
