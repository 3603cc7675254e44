-- Completing an upload takes a lease: the request that moved the upload to
-- 'completing' holds it until lease_until (Unix ms), under a random token.
-- A process that dies mid-completion leaves the lease to run out; after
-- that, completing again resumes the work and aborting rolls it back, and
-- the cleanup task rolls back what nobody resumed. Only the holder of the
-- current token may finish, so two completions never both create an asset.
ALTER TABLE uploads ADD COLUMN lease_token TEXT;
ALTER TABLE uploads ADD COLUMN lease_until BIGINT;
-- Completions an earlier version left stuck have no lease: theirs ran out.
UPDATE uploads SET lease_until = 0 WHERE status = 'completing';
