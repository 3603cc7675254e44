//! The database: one pool (`sqlx::AnyPool`) over PostgreSQL or SQLite, with
//! the schema in `migrations/<backend>/` applied in order. Every query is
//! written once, in the SQL both accept (`$n` parameters, BIGINT times).

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Connection, Executor, Row};

use crate::error::StartupError;

/// Which server the pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

#[derive(Debug, Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

struct Migration {
    version: i64,
    name: &'static str,
    postgres: &'static str,
    sqlite: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        postgres: include_str!("../migrations/postgres/0001_init.sql"),
        sqlite: include_str!("../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "billing_retention",
        postgres: include_str!("../migrations/0002_billing_retention.sql"),
        sqlite: include_str!("../migrations/0002_billing_retention.sql"),
    },
    Migration {
        version: 3,
        name: "completion_lease",
        postgres: include_str!("../migrations/0003_completion_lease.sql"),
        sqlite: include_str!("../migrations/0003_completion_lease.sql"),
    },
];

/// Any PostgreSQL advisory-lock key will do; this one is "splitsnd" in ASCII.
const MIGRATION_LOCK: i64 = 0x73706c6974736e64;

impl Db {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db, StartupError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StartupError::Config(format!("database_url must be postgres://… or sqlite://…, not {url:?}")));
        };
        if backend == Backend::Sqlite
            && let Some(path) = sqlite_path(url)
            && let Some(dir) = std::path::Path::new(&path).parent().filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)?;
        }
        let opts = AnyConnectOptions::from_str(url)?.disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; writers wait
                        // for each other up to the busy timeout.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 30000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await?;
        Ok(Db { pool, backend })
    }

    /// Applies the migrations not yet applied, each in its own transaction.
    /// Concurrent callers on PostgreSQL wait for each other on an advisory lock.
    pub async fn migrate(&self) -> Result<Vec<i64>, StartupError> {
        let mut conn = self.pool.acquire().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_lock($1)").bind(MIGRATION_LOCK).execute(&mut *conn).await?;
        }
        let result = async {
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
            )
            .await?;
            let done: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| r.try_get::<i64, _>(0))
                .collect::<Result<_, _>>()?;
            let mut applied = Vec::new();
            for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
                let sql = match self.backend {
                    Backend::Postgres => m.postgres,
                    Backend::Sqlite => m.sqlite,
                };
                let mut tx = conn.begin().await?;
                sqlx::raw_sql(sql).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
                    .bind(m.version)
                    .bind(m.name)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                tracing::info!(version = m.version, name = m.name, "applied migration");
                applied.push(m.version);
            }
            Ok::<_, sqlx::Error>(applied)
        }
        .await;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATION_LOCK).execute(&mut *conn).await?;
        }
        Ok(result?)
    }

    /// `FOR UPDATE SKIP LOCKED` where the backend has it (SQLite has one writer anyway).
    pub fn skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        }
    }
}

fn sqlite_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| path.to_string())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A fresh random id, for what must not be guessable or ordered: users,
/// upload tokens, queue receipts.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A fresh id for a row that lists sort by `(created_at, id)`: jobs, assets,
/// ledger entries. A UUIDv7 (a millisecond timestamp, then a counter and
/// random bits), so rows made by one process in the same millisecond still
/// sort in the order they were made; a random tie-break reordered them.
pub fn new_sorted_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Whether `e` is a uniqueness violation (a duplicate idempotency key, ledger ref, …).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Whether `e` is a CHECK violation (a balance that would go negative).
pub fn is_check_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_check_violation())
}
