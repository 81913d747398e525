//! The native management API under `/api/v1`. Handlers are thin: authorize, read the clock
//! once, call the store or a domain function, map to wire types.

mod apps;
mod delivery;
mod orgs;
mod rotation_policy;
mod secrets;
mod tokens;
mod views;

use axum::routing::{get, post};
use axum::Router;

use crate::state::SharedState;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/api/v1/openapi.json", get(serve_openapi))
        .route(
            "/api/v1/signing-keys",
            get(orgs::list_signing_keys).post(orgs::rotate_signing_key),
        )
        .route("/api/v1/orgs/{org_id}", get(orgs::get_org))
        .route(
            "/api/v1/orgs/{org_id}/rotation-policy",
            get(rotation_policy::get_org_policy).put(rotation_policy::set_org_policy),
        )
        .route(
            "/api/v1/orgs/{org_id}/apps/{app_id}/rotation-policy",
            get(rotation_policy::app_status),
        )
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
            "/api/v1/orgs/{org_id}/audit-events/verify",
            get(orgs::verify_audit),
        )
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

/// The OpenAPI 3.1 document of `/api/v1`, generated from the handlers' annotations. Served at
/// `/api/v1/openapi.json` and committed as `openapi.json`; a test keeps the two equal.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Rekey management API",
        description = "Rekey's native API: organizations, members, apps, secrets, notification destinations, deliveries, API tokens and the audit trail. Errors are RFC 9457 problem details.",
        license(name = "Apache-2.0")
    ),
    paths(
        orgs::get_org,
        orgs::list_members,
        orgs::add_member,
        orgs::set_member_role,
        orgs::remove_member,
        orgs::list_audit,
        orgs::verify_audit,
        orgs::list_signing_keys,
        orgs::rotate_signing_key,
        apps::create_app,
        apps::list_apps,
        apps::get_app,
        apps::update_app,
        apps::delete_app,
        apps::list_secrets,
        apps::revoke_secret,
        secrets::rotate,
        secrets::regenerate,
        secrets::finish,
        delivery::put_destination,
        delivery::list_destinations,
        delivery::get_destination,
        delivery::delete_destination,
        delivery::test_destination,
        delivery::list_deliveries,
        delivery::get_delivery,
        delivery::retry_delivery,
        tokens::create,
        tokens::list,
        tokens::revoke,
        rotation_policy::get_org_policy,
        rotation_policy::set_org_policy,
        rotation_policy::app_status,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token: a user's API token exchanged at /csp/gateway/am/api/auth/api-tokens/authorize, or a service account's client-credentials token",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as pretty JSON (what is served and committed).
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "the document is built from static types and always serializes"
)]
pub fn openapi_json() -> String {
    use utoipa::OpenApi as _;
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
        + "\n"
}

async fn serve_openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        openapi_json(),
    )
}
