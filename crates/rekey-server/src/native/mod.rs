//! The native management API under `/api/v1`. Handlers are thin: authorize, read the clock
//! once, call the store or a domain function, map to wire types.

mod apps;
mod delivery;
mod orgs;
mod secrets;
mod tokens;
mod views;

use axum::routing::{get, post};
use axum::Router;

use crate::state::SharedState;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/api/v1/signing-keys", get(orgs::list_signing_keys))
        .route("/api/v1/orgs/{org_id}", get(orgs::get_org))
        .route(
            "/api/v1/orgs/{org_id}/members",
            get(orgs::list_members).post(orgs::add_member),
        )
        .route(
            "/api/v1/orgs/{org_id}/members/{kind}/{member_id}",
            axum::routing::put(orgs::set_member_role).delete(orgs::remove_member),
        )
        .route("/api/v1/orgs/{org_id}/audit-events", get(orgs::list_audit))
        .route(
            "/api/v1/orgs/{org_id}/api-tokens",
            get(tokens::list).post(tokens::create),
        )
        .route(
            "/api/v1/orgs/{org_id}/api-tokens/{token_id}/revoke",
            post(tokens::revoke),
        )
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
        .route(
            "/api/v1/orgs/{org_id}/apps/{app_id}/secrets/rotate",
            post(secrets::rotate),
        )
        .route(
            "/api/v1/orgs/{org_id}/apps/{app_id}/secrets/regenerate",
            post(secrets::regenerate),
        )
        .route(
            "/api/v1/orgs/{org_id}/apps/{app_id}/secrets/finish",
            post(secrets::finish),
        )
        .route(
            "/api/v1/orgs/{org_id}/apps/{app_id}/destinations",
            get(delivery::list_destinations),
        )
        .route(
            "/api/v1/orgs/{org_id}/apps/{app_id}/destinations/{notification_type}",
            axum::routing::put(delivery::put_destination)
                .get(delivery::get_destination)
                .delete(delivery::delete_destination),
        )
        .route(
            "/api/v1/orgs/{org_id}/apps/{app_id}/destinations/{notification_type}/test",
            post(delivery::test_destination),
        )
        .route(
            "/api/v1/orgs/{org_id}/deliveries",
            get(delivery::list_deliveries),
        )
        .route(
            "/api/v1/orgs/{org_id}/deliveries/{delivery_id}",
            get(delivery::get_delivery),
        )
        .route(
            "/api/v1/orgs/{org_id}/deliveries/{delivery_id}/retry",
            post(delivery::retry_delivery),
        )
}
