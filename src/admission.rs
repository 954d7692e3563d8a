//! Gateway-wide bounds on what callers can make the gateway hold at once:
//! bytes of request bodies kept in memory, and uploads streaming. Past a
//! bound a caller is told to come back later (503 with `Retry-After`)
//! instead of the machine slowing down, or running out, for everyone.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::ServerSettings;
use crate::metrics::Metrics;

/// A bound was reached; the request is refused, not queued.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Overloaded {
    #[error(
        "the gateway holds its limit of {0} bytes of request bodies \
         (server.max_body_bytes_in_flight); retry shortly"
    )]
    BodyBytes(usize),
    #[error(
        "the gateway is streaming its limit of {0} uploads (server.max_concurrent_uploads); \
         retry shortly"
    )]
    Uploads(usize),
}

#[derive(Clone)]
pub struct Admission {
    body_bytes: Arc<Semaphore>,
    body_bytes_limit: usize,
    uploads: Arc<Semaphore>,
    uploads_limit: usize,
    metrics: Arc<Metrics>,
}

impl Admission {
    pub fn new(settings: &ServerSettings, metrics: Arc<Metrics>) -> Self {
        let body_bytes_limit = settings
            .max_body_bytes_in_flight
            .min(Semaphore::MAX_PERMITS);
        let uploads_limit = settings.max_concurrent_uploads.min(Semaphore::MAX_PERMITS);
        Self {
            body_bytes: Arc::new(Semaphore::new(body_bytes_limit)),
            body_bytes_limit,
            uploads: Arc::new(Semaphore::new(uploads_limit)),
            uploads_limit,
            metrics,
        }
    }

    /// Memory a request body is about to be held in, charged as it grows
    /// and given back when the [`HeldBytes`] is dropped.
    pub fn body_memory(&self) -> HeldBytes {
        HeldBytes {
            admission: self.clone(),
            permit: None,
        }
    }

    /// A place among the uploads streaming now, held until dropped.
    pub fn upload_slot(&self) -> Result<OwnedSemaphorePermit, Overloaded> {
        self.uploads.clone().try_acquire_owned().map_err(|_| {
            self.shed("uploads");
            Overloaded::Uploads(self.uploads_limit)
        })
    }

    fn shed(&self, reason: &str) {
        self.metrics
            .requests_shed
            .with_label_values(&[reason])
            .inc();
    }
}

/// Bytes of one request's body held in memory.
pub struct HeldBytes {
    admission: Admission,
    permit: Option<OwnedSemaphorePermit>,
}

impl HeldBytes {
    /// Grows what is held to `total` bytes; refused when the gateway-wide
    /// bound would be crossed. Never shrinks: memory given back by a
    /// request is returned when it ends.
    pub fn grow_to(&mut self, total: usize) -> Result<(), Overloaded> {
        let held = self.held();
        if total <= held {
            return Ok(());
        }
        let refused = || {
            self.admission.shed("body_bytes");
            Overloaded::BodyBytes(self.admission.body_bytes_limit)
        };
        let more = u32::try_from(total - held).map_err(|_| refused())?;
        let permit = self
            .admission
            .body_bytes
            .clone()
            .try_acquire_many_owned(more)
            .map_err(|_| refused())?;
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
        Ok(())
    }

    pub fn held(&self) -> usize {
        self.permit
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(bytes: usize, uploads: usize) -> Admission {
        let mut settings = crate::config::Settings::load(None).unwrap().server;
        settings.max_body_bytes_in_flight = bytes;
        settings.max_concurrent_uploads = uploads;
        Admission::new(&settings, Metrics::new())
    }

    #[test]
    fn body_bytes_are_bounded_across_requests_and_given_back() {
        let admission = admission(100, 1);
        let mut first = admission.body_memory();
        first.grow_to(60).unwrap();
        first.grow_to(40).unwrap();
        assert_eq!(first.held(), 60);
        let mut second = admission.body_memory();
        assert!(matches!(
            second.grow_to(41),
            Err(Overloaded::BodyBytes(100))
        ));
        second.grow_to(40).unwrap();
        drop(first);
        second.grow_to(100).unwrap();
        assert_eq!(second.held(), 100);
    }

    #[test]
    fn uploads_are_bounded() {
        let admission = admission(100, 2);
        let a = admission.upload_slot().unwrap();
        let _b = admission.upload_slot().unwrap();
        assert!(matches!(
            admission.upload_slot(),
            Err(Overloaded::Uploads(2))
        ));
        drop(a);
        assert!(admission.upload_slot().is_ok());
    }
}
