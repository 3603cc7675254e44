//! The production configuration against real servers on 127.0.0.1:
//! PostgreSQL, an S3- and SQS-compatible server (moto's), and s3s-fs, an S3
//! server that checks signatures and expiry (moto does not), which
//! `scripts/services.sh start` installs and starts. Each test gets its own
//! database, bucket and queue. Without the servers' variables the tests say
//! so and pass, unless SPLITSOUND_REQUIRE_SERVICES=1 (as `scripts/test.sh`
//! sets), where a missing server is a failure.

mod common;

use common::{embedded_config, faults, flows, ops};
use splitsound_server::Config;
use splitsound_server::config::{QueueConfig, S3Config, SqsConfig, StorageConfig};

struct Services {
    postgres: String,
    s3: String,
    sqs: String,
    s3s: String,
}

fn services() -> Option<Services> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        var("SPLITSOUND_TEST_POSTGRES_URL"),
        var("SPLITSOUND_TEST_S3_ENDPOINT"),
        var("SPLITSOUND_TEST_SQS_ENDPOINT"),
        var("SPLITSOUND_TEST_S3S_ENDPOINT"),
    ) {
        (Some(postgres), Some(s3), Some(sqs), Some(s3s)) => Some(Services { postgres, s3, sqs, s3s }),
        _ => {
            assert!(
                var("SPLITSOUND_REQUIRE_SERVICES").is_none(),
                "SPLITSOUND_REQUIRE_SERVICES is set but the servers' variables are not: run `eval \"$(scripts/services.sh start)\"`"
            );
            eprintln!("skipped: no servers (eval \"$(scripts/services.sh start)\" to run these)");
            None
        }
    }
}

/// A fresh database on the test cluster.
async fn fresh_database(admin_url: &str) -> String {
    sqlx::any::install_default_drivers();
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(admin_url).await.expect("PostgreSQL answers");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

#[derive(Clone, Copy, PartialEq)]
enum Setup {
    /// moto's S3 and SQS.
    Sqs,
    /// moto's S3, the PostgreSQL queue.
    PgQueue,
    /// s3s-fs (signatures checked), moto's SQS.
    SignedS3,
}

/// PostgreSQL with the store and queue `setup` names.
async fn production(dir: &std::path::Path, setup: Setup) -> Option<Config> {
    let sqs = setup != Setup::PgQueue;
    let s = services()?;
    let mut cfg = embedded_config(dir);
    let id = uuid::Uuid::new_v4().simple().to_string();
    cfg.database_url = Some(fresh_database(&s.postgres).await);
    let (endpoint, secret) = match setup {
        Setup::SignedS3 => (s.s3s.clone(), "testsecret"),
        _ => (s.s3.clone(), "test"),
    };
    cfg.storage = StorageConfig::S3(S3Config {
        bucket: format!("b-{}", &id[..20]),
        endpoint: Some(endpoint),
        path_style: true,
        access_key_id: Some("test".into()),
        secret_access_key: Some(secret.into()),
        create_bucket: true,
        ..S3Config::default()
    });
    // S3 parts are at least 5 MiB, except the last.
    cfg.limits.part_size = 5 * 1024 * 1024;
    if sqs {
        cfg.queue = QueueConfig::Sqs(SqsConfig {
            queue_name: Some(format!("jobs-{id}")),
            create_queue: true,
            endpoint: Some(s.sqs.clone()),
            access_key_id: Some("test".into()),
            secret_access_key: Some("test".into()),
            ..SqsConfig::default()
        });
    }
    Some(cfg)
}

macro_rules! production_tests {
    ($($name:ident, $setup:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let dir = tempfile::tempdir().unwrap();
            let Some(cfg) = production(dir.path(), $setup).await else { return };
            let name = stringify!($name);
            let flow = name.trim_end_matches("_pg_queue").trim_end_matches("_s3s");
            match flow {
                "full_flow" => flows::full_flow(cfg).await,
                "idempotency" => flows::idempotency(cfg).await,
                "credit_and_rate_limits" => flows::credit_and_rate_limits(cfg).await,
                "upload_limits" => flows::upload_limits(cfg).await,
                "cancel_and_retry" => flows::cancel_and_retry(cfg).await,
                "cross_user" => flows::cross_user(cfg).await,
                "poison_message" => flows::poison_message(cfg).await,
                "signed_urls" => flows::signed_urls(cfg).await,
                "billing" => ops::billing(cfg).await,
                "admin" => ops::admin(cfg).await,
                "retention" => ops::retention(cfg).await,
                "worker_kill9" => faults::worker_kill9(cfg).await,
                "complete_crash" => faults::complete_crash(cfg).await,
                "hardening" => ops::hardening(cfg).await,
                "balance_race" => faults::balance_race(cfg).await,
                other => panic!("no flow {other}"),
            }
        }
    )*};
}

production_tests! {
    full_flow, Setup::Sqs;
    idempotency, Setup::Sqs;
    credit_and_rate_limits, Setup::Sqs;
    upload_limits, Setup::Sqs;
    cancel_and_retry, Setup::Sqs;
    cross_user, Setup::Sqs;
    poison_message, Setup::Sqs;
    full_flow_pg_queue, Setup::PgQueue;
    cancel_and_retry_pg_queue, Setup::PgQueue;
    poison_message_pg_queue, Setup::PgQueue;
    full_flow_s3s, Setup::SignedS3;
    upload_limits_s3s, Setup::SignedS3;
    signed_urls_s3s, Setup::SignedS3;
    billing_pg_queue, Setup::PgQueue;
    admin, Setup::Sqs;
    admin_pg_queue, Setup::PgQueue;
    retention_pg_queue, Setup::PgQueue;
    retention_s3s, Setup::SignedS3;
    worker_kill9, Setup::Sqs;
    worker_kill9_pg_queue, Setup::PgQueue;
    balance_race_pg_queue, Setup::PgQueue;
    complete_crash, Setup::Sqs;
    hardening_pg_queue, Setup::PgQueue;
}

/// The object store stops mid-job (a private s3s-fs this test stops and starts).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_outage() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut cfg) = production(dir.path(), Setup::PgQueue).await else { return };
    let bin =
        std::env::var("SPLITSOUND_TEST_S3S_BIN").expect("scripts/services.sh start exports SPLITSOUND_TEST_S3S_BIN");
    let mut s3 = faults::S3Server::start(&bin, &dir.path().join("s3"));
    if let StorageConfig::S3(c) = &mut cfg.storage {
        c.endpoint = Some(format!("http://127.0.0.1:{}", s3.port));
        c.secret_access_key = Some("testsecret".into());
    }
    faults::storage_outage(cfg, &mut s3).await;
}

/// The ledger is append-only and its balance never negative, whatever SQL
/// runs against it: the database refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_rules_are_the_databases() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cfg) = production(dir.path(), Setup::PgQueue).await else { return };
    let srv = common::Server::start(cfg, 0).await;
    let token = srv.login("kim@example.com").await;
    let user = common::user_id(&token);
    let pool = &srv.app.db.pool;
    let neg = sqlx::query(
        "INSERT INTO credit_ledger (id, user_id, delta, reason, ref, created_at) VALUES ('x', $1, -11, 'test', 'test:1', 0)",
    )
    .bind(&user)
    .execute(pool)
    .await;
    assert!(neg.is_err(), "a balance below zero is refused");
    assert!(sqlx::query("UPDATE credit_ledger SET delta = 1000").execute(pool).await.is_err());
    assert!(sqlx::query("DELETE FROM credit_ledger").execute(pool).await.is_err());
    assert_eq!(srv.balance(&token).await, 10);
    srv.ledger_balances(&user).await;
    srv.stop().await;
}
