-- Each completed record's referral follow-up state, kept in indexed columns so the lead's
-- "needs action" list, the "overdue only" filter and the dashboard's overdue counts and
-- send/acknowledge times are index range queries instead of reading every open referral and
-- its follow-ups (docs/performance.md). A table of its own because completed records are
-- frozen (trigger records_frozen); it is derived data, maintained by the service layer in the
-- same transaction as every write that changes it (completing a record, recording a
-- follow-up, changing closure days or the confirmation deadline). Working days need Python,
-- so records completed before this migration are filled in once right after it
-- (services._backfill_referral_states).
CREATE TABLE referral_states (
    record_id TEXT PRIMARY KEY REFERENCES records(id),
    status TEXT NOT NULL,
    action TEXT,
    due TEXT,
    sent_at TEXT,
    acknowledged_at TEXT,
    -- copied from the (frozen) record so lists and counts never read the large record rows
    clinician TEXT NOT NULL,
    child_given TEXT,
    child_family TEXT,
    created TEXT NOT NULL,
    completed TEXT
) WITHOUT ROWID;
-- Covering, in the needs-action list's order, and only over states with something due.
CREATE INDEX referral_states_due ON referral_states(due, created, status, action, clinician, child_given, child_family)
    WHERE due IS NOT NULL AND action IS NOT NULL;
-- The dashboard's completion → sent → acknowledged times.
CREATE INDEX referral_states_sent ON referral_states(created, completed, sent_at, acknowledged_at)
    WHERE sent_at IS NOT NULL;

-- A search's page is the newest matches: keep each indexed record's `updated` beside its
-- full-text key, so ordering 12 000 matches needs no lookup of each match in records.
-- Triggers keep it in step with every write of records.updated, in the same transaction.
ALTER TABLE records_search ADD COLUMN updated TEXT;
UPDATE records_search SET updated = (SELECT r.updated FROM records r WHERE r.id = records_search.record_id);
CREATE TRIGGER records_search_updated AFTER UPDATE OF updated ON records
BEGIN
    UPDATE records_search SET updated = NEW.updated WHERE record_id = NEW.id;
END;
CREATE TRIGGER records_search_added AFTER INSERT ON records_search
BEGIN
    UPDATE records_search SET updated = (SELECT r.updated FROM records r WHERE r.id = NEW.record_id)
    WHERE id = NEW.id;
END;
