//! The database: one pool (`sqlx::AnyPool`) over PostgreSQL or SQLite, with
//! the schema in `migrations/` applied in order by sqlx's migrator. Every query is
//! written once, in the SQL both accept (`$n` parameters, BIGINT times).

use std::str::FromStr;
use std::time::Duration;

use sqlx::AnyConnection;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migrate, Migration, MigrationType, Migrator};
use sqlx::{AnyPool, ConnectOptions, Executor, Row, SqlSafeStr};

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

/// sqlx's table of applied migrations, with their checksums.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// Where the runner before sqlx's recorded applied migrations (no checksums).
const LEGACY_TABLE: &str = "schema_migrations";

/// The schema for `backend`, in order. A file never changes once released:
/// sqlx keeps each applied one's checksum and refuses a database whose
/// applied migrations differ from these.
fn migrator(backend: Backend) -> Migrator {
    let init = match backend {
        Backend::Postgres => include_str!("../migrations/postgres/0001_init.sql"),
        Backend::Sqlite => include_str!("../migrations/sqlite/0001_init.sql"),
    };
    let files = [
        (1, "init", init),
        (2, "billing_retention", include_str!("../migrations/0002_billing_retention.sql")),
        (3, "completion_lease", include_str!("../migrations/0003_completion_lease.sql")),
    ];
    Migrator::with_migrations(
        files
            .into_iter()
            .map(|(version, name, sql)| {
                Migration::new(version, name.into(), MigrationType::Simple, sql.into_sql_str(), false)
            })
            .collect(),
    )
}

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

    /// Applies the migrations not yet applied, with sqlx's [`Migrator`]: each
    /// in its own transaction, concurrent callers serialised by its lock
    /// (an advisory lock on PostgreSQL), the applied ones checked against
    /// their checksums. Returns the versions this call applied.
    ///
    /// A database migrated by the runner before sqlx's keeps its history: the
    /// versions its `schema_migrations` table lists are recorded as applied
    /// (with the checksums of the files they ran, unchanged since) before
    /// anything runs, and that table is left as it was.
    pub async fn migrate(&self) -> Result<Vec<i64>, StartupError> {
        let mut migrator = migrator(self.backend);
        // One lock of ours around the carry-over and the run, released
        // whatever fails (sqlx's own would stay held on the pooled connection
        // after an error).
        migrator.set_locking(false);
        let mut conn = self.pool.acquire().await?;
        conn.lock().await?;
        let result = async {
            conn.ensure_migrations_table(MIGRATIONS_TABLE).await?;
            let legacy = legacy_versions(self.backend, &mut conn).await?;
            let before = applied_versions(&mut conn).await?;
            for m in migrator.iter().filter(|m| legacy.contains(&m.version) && !before.contains(&m.version)) {
                conn.skip(MIGRATIONS_TABLE, m).await?;
                tracing::info!(version = m.version, "recorded a migration the earlier runner applied");
            }
            let before = applied_versions(&mut conn).await?;
            migrator.run(&mut *conn).await?;
            let applied: Vec<i64> =
                applied_versions(&mut conn).await?.into_iter().filter(|v| !before.contains(v)).collect();
            Ok::<_, StartupError>(applied)
        }
        .await;
        let unlocked = conn.unlock().await;
        let applied = result?;
        unlocked?;
        for version in &applied {
            tracing::info!(version, "applied migration");
        }
        Ok(applied)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> sqlx::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
    }

    /// `FOR UPDATE SKIP LOCKED` where the backend has it (SQLite has one writer anyway).
    pub fn skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        }
    }
}

async fn applied_versions(conn: &mut AnyConnection) -> Result<Vec<i64>, StartupError> {
    let mut v: Vec<i64> = conn.list_applied_migrations(MIGRATIONS_TABLE).await?.iter().map(|m| m.version).collect();
    v.sort_unstable();
    Ok(v)
}

/// The versions the earlier runner recorded; none where its table is absent.
async fn legacy_versions(backend: Backend, conn: &mut AnyConnection) -> Result<Vec<i64>, StartupError> {
    let exists = match backend {
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"
        }
        Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
    };
    let n: i64 = sqlx::query(exists).bind(LEGACY_TABLE).fetch_one(&mut *conn).await?.try_get(0)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let rows =
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT version FROM {LEGACY_TABLE}"))).fetch_all(&mut *conn).await?;
    Ok(rows.iter().map(|r| r.try_get::<i64, _>(0)).collect::<Result<_, _>>()?)
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

/// A job that is still to run or running, as an SQL list for `status IN …`.
pub const ACTIVE_JOB_STATUSES: &str = "('queued', 'running')";

/// Whether `e` is a CHECK violation (a balance that would go negative).
pub fn is_check_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_check_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database the earlier runner migrated to version 2 keeps that history
    /// (nothing runs twice), gets version 3, and a changed file is refused.
    #[tokio::test]
    async fn migrations_keep_the_earlier_history_and_check_checksums() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display()), 2).await.unwrap();
        for m in migrator(Backend::Sqlite).iter().take(2) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(m.sql.as_str().to_string())).execute(&db.pool).await.unwrap();
        }
        sqlx::raw_sql(
            "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL); \
             INSERT INTO schema_migrations VALUES (1, 'init', 0), (2, 'billing_retention', 0)",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        assert_eq!(db.migrate().await.unwrap(), vec![3]);
        assert_eq!(db.migrate().await.unwrap(), Vec::<i64>::new());
        let mut conn = db.pool.acquire().await.unwrap();
        assert_eq!(applied_versions(&mut conn).await.unwrap(), vec![1, 2, 3]);
        drop(conn);

        sqlx::query("UPDATE _sqlx_migrations SET checksum = $1 WHERE version = 2")
            .bind(vec![0u8; 48])
            .execute(&db.pool)
            .await
            .unwrap();
        let e = db.migrate().await.unwrap_err().to_string();
        assert!(e.contains("migration 2") && e.contains("modified"), "{e}");
    }
}
