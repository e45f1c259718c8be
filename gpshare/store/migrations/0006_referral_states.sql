-- Each completed record's referral follow-up state, kept in indexed columns so the lead's
-- "needs action" list, the "overdue only" filter and the dashboard's overdue counts are index
-- range queries instead of reading every open referral and its follow-ups (docs/performance.md).
-- A table of its own because completed records are frozen (trigger records_frozen); it is
-- derived data, maintained by the service layer in the same transaction as every write that
-- changes it (completing a record, recording a follow-up, changing closure days or the
-- confirmation deadline). Working days need Python, so records completed before this
-- migration are filled in once right after it (services._backfill_referral_states).
CREATE TABLE referral_states (
    record_id TEXT PRIMARY KEY REFERENCES records(id),
    status TEXT NOT NULL,
    action TEXT,
    due TEXT,
    -- copied from the (frozen) record so the list never reads the large record rows
    clinician TEXT NOT NULL,
    child_given TEXT,
    child_family TEXT,
    created TEXT NOT NULL
) WITHOUT ROWID;
-- Covering, and only over states with something due.
CREATE INDEX referral_states_due ON referral_states(due, status, action, clinician, child_given, child_family, created)
    WHERE due IS NOT NULL AND action IS NOT NULL;
