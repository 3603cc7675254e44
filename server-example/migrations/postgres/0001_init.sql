-- splitsound-server schema, PostgreSQL. Times are Unix milliseconds (BIGINT),
-- ids are random UUIDs as text, flags are 0/1: the same column types as the
-- SQLite schema, so one set of queries serves both.

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    email       TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    name        TEXT,
    created_at  BIGINT NOT NULL,
    UNIQUE (issuer, subject)
);

-- The balance is the sum of the ledger, kept by a trigger on every ledger
-- insert; the CHECK makes any entry that would take it below zero fail.
CREATE TABLE credit_accounts (
    user_id     TEXT PRIMARY KEY REFERENCES users (id),
    balance     BIGINT NOT NULL CHECK (balance >= 0),
    updated_at  BIGINT NOT NULL
);

-- Append-only: UPDATE and DELETE are refused by triggers. `ref` makes each
-- entry idempotent (job:<id>:debit, job:<id>:refund, signup:<user>, …).
CREATE TABLE credit_ledger (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES credit_accounts (user_id),
    delta       BIGINT NOT NULL CHECK (delta <> 0),
    reason      TEXT NOT NULL,
    ref         TEXT NOT NULL UNIQUE,
    job_id      TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX credit_ledger_user ON credit_ledger (user_id, created_at);

CREATE FUNCTION credit_ledger_apply() RETURNS trigger AS $$
BEGIN
    UPDATE credit_accounts SET balance = balance + NEW.delta, updated_at = NEW.created_at
        WHERE user_id = NEW.user_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no credit account for user %', NEW.user_id;
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER credit_ledger_apply AFTER INSERT ON credit_ledger
    FOR EACH ROW EXECUTE FUNCTION credit_ledger_apply();

CREATE FUNCTION credit_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'credit_ledger is append-only';
END $$ LANGUAGE plpgsql;
CREATE TRIGGER credit_ledger_append_only BEFORE UPDATE OR DELETE ON credit_ledger
    FOR EACH ROW EXECUTE FUNCTION credit_ledger_append_only();

CREATE TABLE uploads (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id),
    object_key      TEXT NOT NULL,
    storage_upload  TEXT NOT NULL,
    filename        TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    size            BIGINT NOT NULL,
    part_size       BIGINT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'completing', 'completed', 'aborted', 'rejected')),
    failure_code    TEXT,
    asset_id        TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX uploads_status ON uploads (status, created_at);

CREATE TABLE media_assets (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id),
    upload_id       TEXT NOT NULL UNIQUE REFERENCES uploads (id),
    object_key      TEXT NOT NULL,
    filename        TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    size            BIGINT NOT NULL,
    duration_secs   DOUBLE PRECISION NOT NULL,
    sample_rate     BIGINT NOT NULL,
    channels        BIGINT NOT NULL,
    container       TEXT NOT NULL,
    codec           TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    deleted_at      BIGINT
);
CREATE INDEX media_assets_user ON media_assets (user_id, created_at, id);

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users (id),
    asset_id         TEXT NOT NULL REFERENCES media_assets (id),
    status           TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    stage            TEXT NOT NULL,
    progress         DOUBLE PRECISION NOT NULL DEFAULT 0,
    config           TEXT NOT NULL,
    request_hash     TEXT NOT NULL,
    idempotency_key  TEXT,
    attempt          BIGINT NOT NULL,
    parent_job_id    TEXT REFERENCES jobs (id),
    credits          BIGINT NOT NULL,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    failure_code     TEXT,
    failure_message  TEXT,
    runs_on          TEXT,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    updated_at       BIGINT NOT NULL,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX jobs_user ON jobs (user_id, created_at, id);
CREATE INDEX jobs_status ON jobs (status, created_at);

CREATE TABLE output_tracks (
    id            TEXT PRIMARY KEY,
    job_id        TEXT NOT NULL REFERENCES jobs (id),
    stem          TEXT NOT NULL,
    object_key    TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    deleted_at    BIGINT,
    UNIQUE (job_id, stem)
);

CREATE TABLE usage_logs (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id),
    job_id        TEXT NOT NULL REFERENCES jobs (id),
    outcome       TEXT NOT NULL,
    audio_secs    DOUBLE PRECISION NOT NULL,
    wall_secs     DOUBLE PRECISION NOT NULL,
    cpu_secs      DOUBLE PRECISION NOT NULL,
    gpu_secs      DOUBLE PRECISION NOT NULL,
    runs_on       TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX usage_logs_user ON usage_logs (user_id, created_at);

-- The database queue (queue.kind = "database").
CREATE TABLE queue_messages (
    id             TEXT PRIMARY KEY,
    body           TEXT NOT NULL,
    visible_at     BIGINT NOT NULL,
    receipt        TEXT,
    receive_count  BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL
);
CREATE INDEX queue_messages_visible ON queue_messages (visible_at, created_at);
