-- Vault version 2, step 1 (docs/vault-v2.md §1 and §7; DESIGN §10.1 "Keys", "The key
-- directory", §10.3): the tables that will hold the outputs of gpshare/store/keys. Nothing
-- reads or writes them yet. Ciphertexts, public keys and signatures are BLOBs; times are ISO
-- text. As §10.3 asks of the server: no DELETE anywhere, and no UPDATE of wraps, directory
-- rows or rotation statements (a grant, a rotation, a confirmation or a re-wrap appends).

-- A user's key bundle (keys.bundle.SealedBundle), one row per bundle generation. `state`:
-- provisional (the signing key only, under a one-time password), active, or inert (kept after
-- an admin reset: the old password still opens it). Re-sealing after a password change and
-- the move to inert update the row; who and which generation it is never change.
CREATE TABLE key_bundles (
    user_id TEXT NOT NULL REFERENCES users(username),
    generation INTEGER NOT NULL CHECK (generation >= 0),
    state TEXT NOT NULL CHECK (state IN ('provisional', 'active', 'inert')),
    kdf TEXT NOT NULL,
    salt BLOB NOT NULL,
    blob BLOB NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (user_id, generation)
);
CREATE TRIGGER key_bundles_keep_identity BEFORE UPDATE OF user_id, generation, created ON key_bundles
WHEN NEW.user_id IS NOT OLD.user_id OR NEW.generation IS NOT OLD.generation OR NEW.created IS NOT OLD.created
BEGIN
    SELECT RAISE(ABORT, 'a key bundle keeps its user, generation and creation time: seal a new generation instead');
END;
CREATE TRIGGER key_bundles_no_delete BEFORE DELETE ON key_bundles
BEGIN
    SELECT RAISE(ABORT, 'key bundles are never deleted: an old bundle is kept inert');
END;

-- The key directory (keys.directory.SignedEntry): lead encryption key entries (kind
-- 'lead-key': a generation and its public key) and user entries (user, role, X25519 public
-- key, key generation, active). A pending user entry has no signature yet; a lead's
-- confirmation, a role change or a disabling is a new row, so the newest row of a user is
-- their current entry.
CREATE TABLE directory (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'lead-key')),
    user_id TEXT REFERENCES users(username),
    generation INTEGER NOT NULL CHECK (generation >= 0),
    role TEXT CHECK (role IN ('clinician', 'lead', 'admin')),
    public_key BLOB NOT NULL,
    active INTEGER CHECK (active IN (0, 1)),
    signature BLOB,
    status TEXT NOT NULL CHECK (status IN ('pending', 'confirmed')),
    created TEXT NOT NULL,
    CHECK (CASE kind WHEN 'user' THEN user_id IS NOT NULL AND role IS NOT NULL AND active IS NOT NULL
                     ELSE user_id IS NULL AND role IS NULL AND active IS NULL END),
    CHECK ((status = 'confirmed') = (signature IS NOT NULL)),
    CHECK (kind = 'user' OR status = 'confirmed')
);
CREATE INDEX directory_user ON directory(user_id, id) WHERE kind = 'user';
CREATE INDEX directory_lead_key ON directory(generation, id) WHERE kind = 'lead-key';
CREATE TRIGGER directory_append_only BEFORE UPDATE ON directory
BEGIN
    SELECT RAISE(ABORT, 'key directory entries are append-only: a confirmation, role change or disabling is a new entry');
END;
CREATE TRIGGER directory_no_delete BEFORE DELETE ON directory
BEGIN
    SELECT RAISE(ABORT, 'key directory entries are append-only: a confirmation, role change or disabling is a new entry');
END;

-- Lead signing key rotations (keys.directory.RotationStatement), one per generation, each
-- signed by the previous lead signing key.
CREATE TABLE lead_rotations (
    generation INTEGER PRIMARY KEY CHECK (generation >= 0),
    previous_key BLOB NOT NULL,
    new_key BLOB NOT NULL,
    signature BLOB NOT NULL
);
CREATE TRIGGER lead_rotations_append_only BEFORE UPDATE ON lead_rotations
BEGIN
    SELECT RAISE(ABORT, 'lead key rotation statements are append-only');
END;
CREATE TRIGGER lead_rotations_no_delete BEFORE DELETE ON lead_rotations
BEGIN
    SELECT RAISE(ABORT, 'lead key rotation statements are append-only');
END;

-- Generation `generation` of the clinical key or the lead key, HPKE-wrapped
-- (keys.wraps.wrap_key) for one holder's key (`recipient`: a user id, or 'breakglass').
-- A rotation adds a generation; nothing is re-wrapped in place.
CREATE TABLE role_key_wraps (
    key_name TEXT NOT NULL CHECK (key_name IN ('clinical', 'lead')),
    generation INTEGER NOT NULL CHECK (generation >= 0),
    recipient TEXT NOT NULL,
    recipient_generation INTEGER NOT NULL CHECK (recipient_generation >= 0),
    wrap BLOB NOT NULL,
    PRIMARY KEY (key_name, generation, recipient, recipient_generation)
);
-- A session unwraps the role keys of one holder.
CREATE INDEX role_key_wraps_recipient ON role_key_wraps(recipient, key_name, generation);
CREATE TRIGGER role_key_wraps_append_only BEFORE UPDATE ON role_key_wraps
BEGIN
    SELECT RAISE(ABORT, 'role key wraps are append-only: a rotation adds a new generation');
END;
CREATE TRIGGER role_key_wraps_no_delete BEFORE DELETE ON role_key_wraps
BEGIN
    SELECT RAISE(ABORT, 'role key wraps are append-only: a rotation adds a new generation');
END;

-- One object key (an N object: answers, addendum, letter, note, review…) HPKE-wrapped for one
-- recipient key: its writer, its author or the lead public key of a generation.
CREATE TABLE object_wraps (
    object_kind TEXT NOT NULL,
    object_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    recipient_generation INTEGER NOT NULL CHECK (recipient_generation >= 0),
    wrap BLOB NOT NULL,
    created TEXT NOT NULL,
    -- Also the lookup of opening one record: (kind, id, recipient) (docs/vault-v2.md §6.1).
    PRIMARY KEY (object_kind, object_id, recipient, recipient_generation)
);
-- Every object of one recipient (a clinician's in-memory search; a lead's re-wrap).
CREATE INDEX object_wraps_recipient ON object_wraps(recipient, object_kind, object_id);
CREATE TRIGGER object_wraps_append_only BEFORE UPDATE ON object_wraps
BEGIN
    SELECT RAISE(ABORT, 'object key wraps are append-only: a re-wrap adds a new row');
END;
CREATE TRIGGER object_wraps_no_delete BEFORE DELETE ON object_wraps
BEGIN
    SELECT RAISE(ABORT, 'object key wraps are append-only: a re-wrap adds a new row');
END;

-- The remembered logins leads and admins can list and revoke (the secret stays in the OS
-- keyring of the workstation). Revoking sets `revoked` once; rows are never deleted.
CREATE TABLE remembered_logins (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(username),
    workstation TEXT NOT NULL CHECK (length(workstation) > 0),
    created TEXT NOT NULL,
    revoked TEXT
);
CREATE INDEX remembered_logins_user ON remembered_logins(user_id, workstation);
CREATE TRIGGER remembered_logins_revoke_only BEFORE UPDATE ON remembered_logins
WHEN OLD.revoked IS NOT NULL OR NEW.revoked IS NULL OR NEW.id IS NOT OLD.id
    OR NEW.user_id IS NOT OLD.user_id OR NEW.workstation IS NOT OLD.workstation
    OR NEW.created IS NOT OLD.created
BEGIN
    SELECT RAISE(ABORT, 'a remembered login can only be revoked, once: add a new one instead');
END;
CREATE TRIGGER remembered_logins_no_delete BEFORE DELETE ON remembered_logins
BEGIN
    SELECT RAISE(ABORT, 'remembered logins are never deleted: revoke them instead');
END;

-- Acknowledgements of a break-glass ceremony (its 'breakglass_used' audit event); the banner
-- shows until two different users have acknowledged it.
CREATE TABLE breakglass_acks (
    event_seq INTEGER NOT NULL REFERENCES audit(seq),
    user_id TEXT NOT NULL REFERENCES users(username),
    at TEXT NOT NULL,
    PRIMARY KEY (event_seq, user_id)
);
CREATE TRIGGER breakglass_acks_name_the_event BEFORE INSERT ON breakglass_acks
WHEN (SELECT action FROM audit WHERE seq = NEW.event_seq) IS NOT 'breakglass_used'
BEGIN
    SELECT RAISE(ABORT, 'a break-glass acknowledgement must name a breakglass_used audit event');
END;
CREATE TRIGGER breakglass_acks_append_only BEFORE UPDATE ON breakglass_acks
BEGIN
    SELECT RAISE(ABORT, 'break-glass acknowledgements are append-only');
END;
CREATE TRIGGER breakglass_acks_no_delete BEFORE DELETE ON breakglass_acks
BEGIN
    SELECT RAISE(ABORT, 'break-glass acknowledgements are append-only');
END;
-- The newest break-glass event, without reading the whole audit log: a partial index that
-- holds only those events (the audit table itself is unchanged).
CREATE INDEX audit_breakglass_used ON audit(seq) WHERE action = 'breakglass_used';
