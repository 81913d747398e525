//! Last use of secrets, aggregated in memory and written in batches.
//!
//! The token endpoint records which secret matched without touching the database; a flush
//! (every `last_use_flush_seconds`, and at shutdown) writes the newest time per secret. A
//! crash loses at most one interval of last-use data and nothing else.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::Timestamp;
use crate::error::CoreResult;
use crate::model::SecretId;
use crate::store::Store;

#[derive(Debug, Default)]
pub struct LastUseRecorder {
    pending: Mutex<HashMap<SecretId, Timestamp>>,
}

impl LastUseRecorder {
    pub fn record(&self, secret: SecretId, at: Timestamp) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let slot = p.entry(secret).or_insert(at);
        if *slot < at {
            *slot = at;
        }
    }

    /// Writes what is pending. On failure the entries are put back for the next flush.
    pub async fn flush(&self, store: &dyn Store) -> CoreResult<usize> {
        let mut batch: Vec<(SecretId, Timestamp)> = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.drain().collect()
        };
        // Rows in a fixed order: two writers touching the same secrets cannot deadlock.
        batch.sort();
        if batch.is_empty() {
            return Ok(0);
        }
        if let Err(e) = store.record_last_use(&batch).await {
            for (id, at) in batch {
                self.record(id, at);
            }
            return Err(e);
        }
        Ok(batch.len())
    }

    pub fn pending(&self) -> usize {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_use_per_secret_is_kept() {
        let r = LastUseRecorder::default();
        let s = SecretId::new();
        r.record(s, Timestamp::from_millis(5));
        r.record(s, Timestamp::from_millis(3));
        r.record(SecretId::new(), Timestamp::from_millis(1));
        assert_eq!(r.pending(), 2);
        let p = r.pending.lock().unwrap();
        assert_eq!(p[&s], Timestamp::from_millis(5));
    }
}
