//! The job queue: messages carry a job id and nothing else (the database is
//! the truth). Delivery is at least once: a received message stays hidden for
//! a visibility timeout that the worker extends while it works, and comes back
//! if the worker dies. Two backends: a table in the job database, or SQS.

use std::time::Duration;

use aws_sdk_sqs::config::{BehaviorVersion, Region};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::db::{Db, new_id, now_ms};
use crate::error::StartupError;

/// Where job messages wait for a worker: `queue` in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum QueueConfig {
    /// A table in the job database (`SKIP LOCKED` on PostgreSQL).
    #[default]
    Database,
    Sqs(SqsConfig),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqsConfig {
    /// The queue's URL; or `queue_name`, looked up (and created when `create_queue`).
    pub queue_url: Option<String>,
    pub queue_name: Option<String>,
    pub create_queue: bool,
    pub region: String,
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl Default for SqsConfig {
    fn default() -> Self {
        SqsConfig {
            queue_url: None,
            queue_name: None,
            create_queue: false,
            region: "us-east-1".into(),
            endpoint: None,
            access_key_id: None,
            secret_access_key: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("queue unavailable: {0}")]
pub struct QueueError(pub String);

/// One received message.
#[derive(Debug, Clone)]
pub struct Message {
    pub job_id: String,
    /// Handle for [`Queue::extend`] and [`Queue::delete`].
    pub receipt: String,
    /// How many times it has been received, this time included.
    pub receive_count: i64,
}

/// What the queue holds (for admin and metrics).
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct QueueStats {
    pub visible: i64,
    pub in_flight: i64,
    /// Age of the oldest waiting message, when the backend knows it.
    pub oldest_age_secs: Option<f64>,
}

#[derive(Debug, Clone)]
pub enum Queue {
    Database(Db),
    Sqs(SqsQueue),
}

impl Queue {
    pub async fn send(&self, job_id: &str) -> Result<(), QueueError> {
        match self {
            Queue::Database(db) => {
                sqlx::query("INSERT INTO queue_messages (id, body, visible_at, created_at) VALUES ($1, $2, $3, $3)")
                    .bind(new_id())
                    .bind(job_id)
                    .bind(now_ms())
                    .execute(&db.pool)
                    .await
                    .map_err(|e| QueueError(e.to_string()))?;
                Ok(())
            }
            Queue::Sqs(q) => q.send(job_id).await,
        }
    }

    /// Waits up to `wait` for a message and hides it for `visibility`.
    pub async fn receive(&self, wait: Duration, visibility: Duration) -> Result<Option<Message>, QueueError> {
        match self {
            Queue::Database(db) => {
                let deadline = tokio::time::Instant::now() + wait;
                loop {
                    if let Some(m) = db_receive(db, visibility).await? {
                        return Ok(Some(m));
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(None);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            Queue::Sqs(q) => q.receive(wait, visibility).await,
        }
    }

    /// Hides the message for `visibility` from now (a heartbeat, or a retry's backoff).
    pub async fn extend(&self, m: &Message, visibility: Duration) -> Result<(), QueueError> {
        match self {
            Queue::Database(db) => {
                sqlx::query("UPDATE queue_messages SET visible_at = $1 WHERE receipt = $2")
                    .bind(now_ms() + visibility.as_millis() as i64)
                    .bind(&m.receipt)
                    .execute(&db.pool)
                    .await
                    .map_err(|e| QueueError(e.to_string()))?;
                Ok(())
            }
            Queue::Sqs(q) => q.extend(&m.receipt, visibility).await,
        }
    }

    pub async fn delete(&self, m: &Message) -> Result<(), QueueError> {
        match self {
            Queue::Database(db) => {
                sqlx::query("DELETE FROM queue_messages WHERE receipt = $1")
                    .bind(&m.receipt)
                    .execute(&db.pool)
                    .await
                    .map_err(|e| QueueError(e.to_string()))?;
                Ok(())
            }
            Queue::Sqs(q) => q.delete(&m.receipt).await,
        }
    }

    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        match self {
            Queue::Database(db) => {
                let now = now_ms();
                let row = sqlx::query(
                    "SELECT CAST(COALESCE(SUM(CASE WHEN visible_at <= $1 THEN 1 ELSE 0 END), 0) AS BIGINT), \
                            CAST(COALESCE(SUM(CASE WHEN visible_at > $1 THEN 1 ELSE 0 END), 0) AS BIGINT), \
                            MIN(CASE WHEN visible_at <= $1 THEN created_at END) FROM queue_messages",
                )
                .bind(now)
                .fetch_one(&db.pool)
                .await
                .map_err(|e| QueueError(e.to_string()))?;
                let oldest: Option<i64> = row.try_get(2).map_err(|e| QueueError(e.to_string()))?;
                Ok(QueueStats {
                    visible: row.try_get(0).map_err(|e| QueueError(e.to_string()))?,
                    in_flight: row.try_get(1).map_err(|e| QueueError(e.to_string()))?,
                    oldest_age_secs: oldest.map(|t| (now - t).max(0) as f64 / 1000.0),
                })
            }
            Queue::Sqs(q) => q.stats().await,
        }
    }
}

/// Takes the oldest visible message: a fresh receipt and a new visibility
/// deadline in one statement (`SKIP LOCKED` keeps PostgreSQL workers apart).
async fn db_receive(db: &Db, visibility: Duration) -> Result<Option<Message>, QueueError> {
    let now = now_ms();
    let receipt = new_id();
    let sql = format!(
        "UPDATE queue_messages SET visible_at = $1, receipt = $2, receive_count = receive_count + 1 \
         WHERE id = (SELECT id FROM queue_messages WHERE visible_at <= $3 ORDER BY visible_at, created_at LIMIT 1{}) \
         RETURNING body, receive_count",
        db.skip_locked()
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now + visibility.as_millis() as i64)
        .bind(&receipt)
        .bind(now)
        .fetch_optional(&db.pool)
        .await
        .map_err(|e| QueueError(e.to_string()))?;
    match row {
        None => Ok(None),
        Some(r) => Ok(Some(Message {
            job_id: r.try_get(0).map_err(|e| QueueError(e.to_string()))?,
            receipt,
            receive_count: r.try_get(1).map_err(|e| QueueError(e.to_string()))?,
        })),
    }
}

#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

fn sqs_err<E, R>(e: aws_sdk_sqs::error::SdkError<E, R>) -> QueueError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    QueueError(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())
}

impl SqsQueue {
    pub async fn new(cfg: &SqsConfig) -> Result<SqsQueue, StartupError> {
        let creds = crate::media::s3::aws_credentials(cfg.access_key_id.as_deref(), cfg.secret_access_key.as_deref())?;
        let mut b = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(cfg.region.clone()))
            .credentials_provider(creds);
        if let Some(ep) = &cfg.endpoint {
            b = b.endpoint_url(ep);
        }
        let client = aws_sdk_sqs::Client::from_conf(b.build());
        let err = |e: QueueError| StartupError::Queue(e.0);
        let url = match (&cfg.queue_url, &cfg.queue_name) {
            (Some(url), _) => url.clone(),
            (None, Some(name)) => match client.get_queue_url().queue_name(name).send().await {
                Ok(out) => out.queue_url().unwrap_or_default().to_string(),
                Err(_) if cfg.create_queue => client
                    .create_queue()
                    .queue_name(name)
                    .send()
                    .await
                    .map_err(|e| err(sqs_err(e)))?
                    .queue_url()
                    .unwrap_or_default()
                    .to_string(),
                Err(e) => return Err(err(sqs_err(e))),
            },
            (None, None) => return Err(StartupError::Config("queue.sqs: set queue_url or queue_name".into())),
        };
        Ok(SqsQueue { client, url })
    }

    async fn send(&self, job_id: &str) -> Result<(), QueueError> {
        self.client.send_message().queue_url(&self.url).message_body(job_id).send().await.map_err(sqs_err)?;
        Ok(())
    }

    async fn receive(&self, wait: Duration, visibility: Duration) -> Result<Option<Message>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(1)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .visibility_timeout(visibility.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(sqs_err)?;
        let Some(m) = out.messages.unwrap_or_default().into_iter().next() else { return Ok(None) };
        let receive_count = m
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        match (m.body, m.receipt_handle) {
            (Some(job_id), Some(receipt)) => Ok(Some(Message { job_id, receipt, receive_count })),
            _ => Err(QueueError("a message without a body or receipt handle".into())),
        }
    }

    async fn extend(&self, receipt: &str, visibility: Duration) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(visibility.as_secs() as i32)
            .send()
            .await
            .map_err(sqs_err)?;
        Ok(())
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        self.client.delete_message().queue_url(&self.url).receipt_handle(receipt).send().await.map_err(sqs_err)?;
        Ok(())
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(sqs_err)?;
        let get = |name: QueueAttributeName| {
            out.attributes().and_then(|a| a.get(&name)).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0)
        };
        Ok(QueueStats {
            visible: get(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            oldest_age_secs: None,
        })
    }
}
