-- gpshare schema v1. Forward-only; each file runs in one transaction with its version bump.

CREATE TABLE users (
    username TEXT PRIMARY KEY,
    full_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('clinician', 'lead', 'admin')),
    gmc_number TEXT,
    active INTEGER NOT NULL DEFAULT 1,
    must_change_password INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL
);

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The practice CA: its private key is wrapped with a key derived from the database key.
CREATE TABLE practice_ca (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cert_pem TEXT NOT NULL,
    key_nonce BLOB NOT NULL,
    wrapped_key BLOB NOT NULL,
    created TEXT NOT NULL
);

-- A user's signing key is wrapped with a key derived from that user's own password.
CREATE TABLE signing_keys (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users(username),
    cert_pem TEXT NOT NULL,
    key_nonce BLOB NOT NULL,
    wrapped_key BLOB NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('issued', 'pkcs12')),
    active INTEGER NOT NULL DEFAULT 1,
    created TEXT NOT NULL
);
CREATE INDEX signing_keys_user ON signing_keys(username, active);

CREATE TABLE records (
    id TEXT PRIMARY KEY,
    clinician TEXT NOT NULL REFERENCES users(username),
    status TEXT NOT NULL CHECK (status IN ('draft', 'completed')),
    form_id TEXT NOT NULL,
    form_version INTEGER NOT NULL,
    answers TEXT NOT NULL,
    current_step TEXT,
    outcome TEXT,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    completed TEXT,
    -- denormalised for lists, filters and chronology (copied from answers on every save)
    child_nhs TEXT,
    child_given TEXT,
    child_family TEXT,
    child_dob TEXT,
    pathway TEXT,
    consent_basis TEXT,
    decision TEXT,
    review_date TEXT
);
CREATE INDEX records_clinician ON records(clinician, status, updated);
CREATE INDEX records_child_nhs ON records(child_nhs);
CREATE INDEX records_child_name ON records(child_family, child_dob);
CREATE INDEX records_completed ON records(status, completed);

-- A completed record is frozen; drafts may change until completion.
CREATE TRIGGER records_frozen BEFORE UPDATE ON records
WHEN OLD.status = 'completed'
BEGIN
    SELECT RAISE(ABORT, 'completed records are immutable');
END;

CREATE TRIGGER records_no_delete_completed BEFORE DELETE ON records
WHEN OLD.status = 'completed'
BEGIN
    SELECT RAISE(ABORT, 'completed records cannot be deleted');
END;

CREATE TABLE addenda (
    id INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL REFERENCES records(id),
    author TEXT NOT NULL REFERENCES users(username),
    created TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX addenda_record ON addenda(record_id);
CREATE TRIGGER addenda_append_only BEFORE UPDATE ON addenda
BEGIN
    SELECT RAISE(ABORT, 'addenda are append-only');
END;
CREATE TRIGGER addenda_no_delete BEFORE DELETE ON addenda
BEGIN
    SELECT RAISE(ABORT, 'addenda are append-only');
END;

CREATE TABLE letters (
    id INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL REFERENCES records(id),
    created TEXT NOT NULL,
    signer TEXT NOT NULL REFERENCES users(username),
    sha256 TEXT NOT NULL,
    pdf BLOB NOT NULL
);
CREATE INDEX letters_record ON letters(record_id);
CREATE INDEX letters_sha ON letters(sha256);

CREATE TABLE followups (
    id INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL REFERENCES records(id),
    event TEXT NOT NULL,
    at TEXT NOT NULL,
    recorded_by TEXT NOT NULL REFERENCES users(username),
    recorded_at TEXT NOT NULL,
    decision TEXT,
    note TEXT,
    details TEXT
);
CREATE INDEX followups_record ON followups(record_id, at);

CREATE TABLE reviews (
    id INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL REFERENCES records(id),
    reviewer TEXT NOT NULL REFERENCES users(username),
    created TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('reasonable', 'needs_discussion')),
    comments TEXT,
    learning TEXT
);
CREATE INDEX reviews_record ON reviews(record_id);

CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    record_id TEXT,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_record ON audit(record_id);
CREATE INDEX audit_actor ON audit(actor, at);

-- Full-text index over the narrative fields (inside the encrypted database).
CREATE VIRTUAL TABLE records_fts USING fts5(record_id UNINDEXED, body, tokenize = 'unicode61 remove_diacritics 2');

-- The audit log is append-only; the hash chain (audit.py) detects anyone who bypasses this.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
