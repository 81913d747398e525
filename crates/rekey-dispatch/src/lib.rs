//! Delivery of the outbox (SPEC section 7): at least once, never concurrently for one row.
//!
//! A [`Dispatcher`] leases due rows (`Store::claim_deliveries`), opens each sealed envelope,
//! hands it to the [`Sink`] for its destination, and records the outcome: delivered (payload
//! wiped), retry later (exponential backoff with jitter), or dead after the retry budget. A
//! node that dies mid-delivery loses its lease when it expires, and another node delivers.
//! Consumers deduplicate on `notificationId`.
//!
//! Tests drive [`Dispatcher::try_execute_batch`] / [`Dispatcher::drain`] instead of sleeping.

mod dispatcher;
pub mod guard;
pub mod sinks;

pub use dispatcher::{DispatchSettings, Dispatcher};
pub use sinks::{DestinationSinks, SendError, Sink};
