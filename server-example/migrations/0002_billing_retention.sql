-- Credit purchases through Stripe Checkout, and the cleanup task's marks.
-- Plain SQL that PostgreSQL and SQLite both take, so one file serves both.

-- Ours, recorded before Stripe's session exists; Stripe's session carries our
-- id as client_reference_id. The credits are granted through the ledger under
-- ref "checkout:<id>", so a checkout pays out once.
CREATE TABLE checkouts (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    pack_id     TEXT NOT NULL,
    credits     BIGINT NOT NULL CHECK (credits > 0),
    amount      BIGINT NOT NULL,
    currency    TEXT NOT NULL,
    session_id  TEXT UNIQUE,
    status      TEXT NOT NULL CHECK (status IN ('creating', 'open', 'awaiting_payment', 'expired', 'payment_failed', 'paid', 'mismatch')),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX checkouts_user ON checkouts (user_id, created_at);

-- Every webhook event id handled, so a redelivery changes nothing.
CREATE TABLE stripe_events (
    id           TEXT PRIMARY KEY,
    type         TEXT NOT NULL,
    created      BIGINT NOT NULL,
    received_at  BIGINT NOT NULL
);

-- When the cleanup task removed what a failed or cancelled job left behind.
ALTER TABLE jobs ADD COLUMN cleaned_at BIGINT;
CREATE INDEX jobs_finished ON jobs (status, finished_at);
CREATE INDEX output_tracks_created ON output_tracks (created_at);
