//! The compute plane: the queue that job messages wait in and the workers
//! that take them, separate, and write the stems to the store. A worker
//! process needs the database (the jobs' truth), the store and the queue,
//! and nothing of the API: it holds a [`Worker`], not the whole service.
//!
//! It builds on the media plane (the store) and the control plane's job
//! state machine; only the HTTP layer and the wiring depend on it.

pub mod queue;
pub mod worker;

pub use queue::{Queue, QueueConfig, QueueStats, SqsConfig};
pub use worker::{Worker, WorkerConfig};

/// The compute plane as the API sees it: where new jobs are sent.
#[derive(Debug)]
pub struct Compute {
    pub queue: Queue,
}

impl Compute {
    /// Opens the queue `cfg` names; the database queue lives in `db`.
    pub async fn open(cfg: &QueueConfig, db: &crate::db::Db) -> Result<Compute, crate::error::StartupError> {
        let queue = match cfg {
            QueueConfig::Database => Queue::Database(db.clone()),
            QueueConfig::Sqs(sqs) => Queue::Sqs(queue::SqsQueue::new(sqs).await?),
        };
        Ok(Compute { queue })
    }

    /// Sends a recorded job to the queue. When the queue does not take it,
    /// the job fails (refunded) and the caller is told to try again later.
    pub async fn submit(&self, db: &crate::db::Db, job_id: &str) -> crate::error::ServiceResult<()> {
        use crate::error::{ErrorKind, ServiceError};
        if let Err(e) = self.queue.send(job_id).await {
            tracing::error!(job = %job_id, error = %e, "enqueue failed; failing the job and refunding");
            let failure = ("queue_unavailable", "the job could not be queued");
            crate::control::jobs::finish(db, job_id, "failed", Some(failure)).await?;
            return Err(ServiceError::new(
                ErrorKind::Unavailable,
                "queue_unavailable",
                format!("job {job_id} could not be queued; it is marked failed and its credits are refunded"),
            )
            .with_retry_after(5));
        }
        Ok(())
    }
}
