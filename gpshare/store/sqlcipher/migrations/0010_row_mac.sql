-- Vault version 2, step 9 (docs/vault-v2.md §1): every class-M row carries `row_mac`, the MAC
-- the engine computes under HKDF(practice, "m-row") over vault id, table, row id, version and
-- the row's MACed columns (gpshare/store/row_macs.py), and checks on every read. Nullable here
-- because a version-1 vault has no practice key and never fills it; on a format-2 vault the
-- engine requires it (gpshare/store/sqlcipher/row_macs.py sets it right after each insert and
-- update, in the same statement's triggers).
ALTER TABLE users ADD COLUMN row_mac BLOB;
ALTER TABLE settings ADD COLUMN row_mac BLOB;
ALTER TABLE practice_ca ADD COLUMN row_mac BLOB;
ALTER TABLE signing_keys ADD COLUMN row_mac BLOB;
ALTER TABLE records ADD COLUMN row_mac BLOB;
ALTER TABLE referral_states ADD COLUMN row_mac BLOB;
ALTER TABLE addenda ADD COLUMN row_mac BLOB;
ALTER TABLE letters ADD COLUMN row_mac BLOB;
ALTER TABLE followups ADD COLUMN row_mac BLOB;
ALTER TABLE reviews ADD COLUMN row_mac BLOB;
ALTER TABLE household_link_reviews ADD COLUMN row_mac BLOB;
ALTER TABLE remembered_logins ADD COLUMN row_mac BLOB;
ALTER TABLE breakglass_acks ADD COLUMN row_mac BLOB;

-- The append-only and frozen guards named every column (BEFORE UPDATE ON t); the MAC is written
-- by an UPDATE of row_mac alone right after the row is inserted or changed, so each guard now
-- names the columns it keeps, and an append-only row's MAC is set once.
DROP TRIGGER records_frozen;
CREATE TRIGGER records_frozen BEFORE UPDATE OF id, clinician, status, form_id, form_version, answers, current_step, outcome, created, updated, completed, child_nhs, child_given, child_family, child_dob, pathway, consent_basis, decision, review_date, version, answers_ct, answers_commit ON records
WHEN OLD.status = 'completed'
BEGIN
    SELECT RAISE(ABORT, 'completed records are immutable');
END;

DROP TRIGGER addenda_append_only;
CREATE TRIGGER addenda_append_only BEFORE UPDATE OF id, record_id, author, created, body, object_id, body_ct, body_commit ON addenda
BEGIN
    SELECT RAISE(ABORT, 'addenda are append-only');
END;
CREATE TRIGGER addenda_mac_once BEFORE UPDATE OF row_mac ON addenda
WHEN OLD.row_mac IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'addenda are append-only');
END;

DROP TRIGGER followups_append_only;
CREATE TRIGGER followups_append_only BEFORE UPDATE OF id, record_id, event, at, recorded_by, recorded_at, decision, note, details, object_id, note_ct, note_commit ON followups
BEGIN
    SELECT RAISE(ABORT, 'follow-up events are append-only');
END;
CREATE TRIGGER followups_mac_once BEFORE UPDATE OF row_mac ON followups
WHEN OLD.row_mac IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'follow-up events are append-only');
END;

DROP TRIGGER reviews_append_only;
CREATE TRIGGER reviews_append_only BEFORE UPDATE OF id, record_id, reviewer, created, verdict, comments, learning, object_id, body_ct, body_commit ON reviews
BEGIN
    SELECT RAISE(ABORT, 'lead reviews are append-only');
END;
CREATE TRIGGER reviews_mac_once BEFORE UPDATE OF row_mac ON reviews
WHEN OLD.row_mac IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'lead reviews are append-only');
END;

DROP TRIGGER household_link_reviews_append_only;
CREATE TRIGGER household_link_reviews_append_only BEFORE UPDATE OF id, record_id, other_record_id, decision, reviewer, created, note, generation, review_ct ON household_link_reviews
BEGIN
    SELECT RAISE(ABORT, 'household link reviews are append-only');
END;
CREATE TRIGGER household_link_reviews_mac_once BEFORE UPDATE OF row_mac ON household_link_reviews
WHEN OLD.row_mac IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'household link reviews are append-only');
END;

DROP TRIGGER breakglass_acks_append_only;
CREATE TRIGGER breakglass_acks_append_only BEFORE UPDATE OF event_seq, user_id, at ON breakglass_acks
BEGIN
    SELECT RAISE(ABORT, 'break-glass acknowledgements are append-only');
END;
CREATE TRIGGER breakglass_acks_mac_once BEFORE UPDATE OF row_mac ON breakglass_acks
WHEN OLD.row_mac IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'break-glass acknowledgements are append-only');
END;

-- A revoke changes `revoked` once; the MAC that follows it changes row_mac alone.
DROP TRIGGER remembered_logins_revoke_only;
CREATE TRIGGER remembered_logins_revoke_only BEFORE UPDATE OF id, user_id, workstation, created, revoked ON remembered_logins
WHEN OLD.revoked IS NOT NULL OR NEW.revoked IS NULL OR NEW.id IS NOT OLD.id
    OR NEW.user_id IS NOT OLD.user_id OR NEW.workstation IS NOT OLD.workstation
    OR NEW.created IS NOT OLD.created
BEGIN
    SELECT RAISE(ABORT, 'a remembered login can only be revoked, once: add a new one instead');
END;
