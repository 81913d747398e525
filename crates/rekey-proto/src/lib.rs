//! Wire types of the APIs Rekey serves, shared by the server, the CLI and (later) the client
//! library. Serde only: no behaviour here. JSON field names follow each dialect: OAuth 2.0
//! responses use snake_case (RFC 6749); the native management API uses camelCase.

pub mod native;
pub mod oauth;
