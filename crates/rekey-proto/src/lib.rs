//! Wire types of the APIs Rekey serves, shared by the server (which renders them), the client
//! library (which parses them) and the CLI. Serde only: no behaviour here. JSON field names
//! follow each dialect: OAuth 2.0 responses use snake_case (RFC 6749); the native management
//! API and CSP use camelCase; SP-API's `ErrorList` is lower case.

pub mod csp;
pub mod native;
pub mod oauth;
pub mod spapi;
