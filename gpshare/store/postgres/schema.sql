-- The practice server's tables (issue #14, DESIGN §10.2–10.4, docs/vault-v2.md §1 and §1.3):
-- vault version 2 shapes only. Class M columns are in the clear and every M row carries
-- `row_mac`, the engine's HMAC under HKDF(practice, "m-row") (keys.envelopes.row_mac), checked
-- on every read. Class C and N exist here only as ciphertext made by the record codec
-- (gpshare/services/_sealing.py); there is no column for an answer, a child's name, a body, a
-- PDF, a note or a verdict. K tables hold what gpshare.store.keys produces (sealed, signed or
-- HPKE-wrapped). The audit chain's tables come from gpshare/store/postgres/audit.py.
--
-- Least privilege (§10.3): the workstation role gets SELECT and INSERT, UPDATE only where a
-- row legitimately changes (a draft, a bundle's seal, a revocation, a user's flags,
-- settings) and no DELETE or TRUNCATE anywhere; the triggers below refuse the changes that
-- must never happen even to the tables' owner.

CREATE FUNCTION gpshare_refuse(why text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', why USING ERRCODE = 'insufficient_privilege';
END $$;

-- One trigger function for "this table is append-only": its message names the table.
CREATE FUNCTION gpshare_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM gpshare_refuse(format('%s rows are append-only: %s refused', TG_TABLE_NAME, TG_OP));
    RETURN NULL;
END $$;

-- "Never deleted": DELETE and TRUNCATE refused on every table, whoever asks.
CREATE FUNCTION gpshare_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM gpshare_refuse(format('%s rows are never deleted: %s refused', TG_TABLE_NAME, TG_OP));
    RETURN NULL;
END $$;

-- ----- class M ----------------------------------------------------------------------------

CREATE TABLE users (
    username text PRIMARY KEY,
    full_name text NOT NULL,
    role text NOT NULL CHECK (role IN ('clinician', 'lead', 'admin')),
    gmc_number text,
    active boolean NOT NULL,
    must_change_password boolean NOT NULL,
    created text NOT NULL,
    row_mac bytea NOT NULL
);

CREATE TABLE settings (
    key text PRIMARY KEY,
    value text NOT NULL,
    row_mac bytea NOT NULL
);

-- The practice CA certificate; its private key only wrapped (AES-GCM).
CREATE TABLE practice_ca (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    cert_pem bytea NOT NULL,
    nonce bytea NOT NULL,
    wrapped bytea NOT NULL,
    created text NOT NULL,
    row_mac bytea NOT NULL
);

CREATE TABLE signing_keys (
    id bigserial PRIMARY KEY,
    username text NOT NULL REFERENCES users(username),
    cert_pem bytea NOT NULL,
    nonce bytea NOT NULL,
    wrapped bytea NOT NULL,
    source text NOT NULL,
    created text NOT NULL,
    active boolean NOT NULL,
    row_mac bytea NOT NULL
);

-- Records: the M row, the N answers ciphertext and its object-key commitment. `version` goes
-- up with every sealed save (bound into the answers' and summary's AAD); `saved_by` is who
-- made that version, so a refused stale save can name them.
CREATE TABLE records (
    id text PRIMARY KEY,
    clinician text NOT NULL REFERENCES users(username),
    status text NOT NULL CHECK (status IN ('draft', 'completed')),
    form_id text NOT NULL,
    form_version integer NOT NULL,
    current_step text,
    created text NOT NULL,
    updated text NOT NULL,
    completed text,
    version integer NOT NULL CHECK (version >= 1),
    saved_by text NOT NULL REFERENCES users(username),
    answers_ct bytea NOT NULL,
    answers_commit bytea NOT NULL,
    row_mac bytea NOT NULL
);
CREATE INDEX records_status_created ON records(status, created);
-- The lists' order (list_records: newest change first, ties by id): the first page reads 200
-- index entries instead of sorting every row (bench/pg_lead_list.py: 1 000 000 records).
CREATE INDEX records_updated ON records(updated, id);

CREATE FUNCTION records_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'completed' THEN
        PERFORM gpshare_refuse(format('record %s is completed: it is never changed', OLD.id));
    END IF;
    IF NEW.version <= OLD.version THEN
        PERFORM gpshare_refuse(format(
            'record %s: a sealed record''s version only goes up: another save got there first',
            OLD.id));
    END IF;
    IF NEW.id <> OLD.id OR NEW.clinician <> OLD.clinician OR NEW.created <> OLD.created
        OR NEW.answers_commit <> OLD.answers_commit THEN
        PERFORM gpshare_refuse(format(
            'record %s keeps its id, author, creation time and answers commitment', OLD.id));
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER records_guard BEFORE UPDATE ON records
    FOR EACH ROW EXECUTE FUNCTION records_guard();

-- Referral states of completed records (M: status, action, dates).
CREATE TABLE referral_states (
    record_id text PRIMARY KEY REFERENCES records(id),
    status text NOT NULL,
    action text,
    due text,
    sent_at text,
    acknowledged_at text,
    row_mac bytea NOT NULL
);

-- The N objects of the other record tables; `object_id` names each in its AAD and wraps.
CREATE TABLE addenda (
    id bigserial PRIMARY KEY,
    record_id text NOT NULL REFERENCES records(id),
    author text NOT NULL REFERENCES users(username),
    created text NOT NULL,
    object_id text NOT NULL UNIQUE,
    body_ct bytea NOT NULL,
    body_commit bytea NOT NULL,
    row_mac bytea NOT NULL
);
CREATE INDEX addenda_record ON addenda(record_id, id);

CREATE TABLE letters (
    id bigserial PRIMARY KEY,
    record_id text NOT NULL REFERENCES records(id),
    created text NOT NULL,
    signer text NOT NULL REFERENCES users(username),
    sha256 text NOT NULL,
    object_id text NOT NULL UNIQUE,
    pdf_ct bytea NOT NULL,
    pdf_commit bytea NOT NULL,
    unsigned_object_id text UNIQUE,
    unsigned_ct bytea,
    unsigned_commit bytea,
    row_mac bytea NOT NULL,
    CHECK ((unsigned_ct IS NULL) = (unsigned_object_id IS NULL)
        AND (unsigned_ct IS NULL) = (unsigned_commit IS NULL))
);
CREATE INDEX letters_record ON letters(record_id, id);
CREATE INDEX letters_sha256 ON letters(sha256);

CREATE TABLE followups (
    id bigserial PRIMARY KEY,
    record_id text NOT NULL REFERENCES records(id),
    event text NOT NULL,
    at text NOT NULL,
    recorded_by text NOT NULL REFERENCES users(username),
    recorded_at text NOT NULL,
    decision text,
    object_id text UNIQUE,
    note_ct bytea,
    note_commit bytea,
    row_mac bytea NOT NULL,
    CHECK ((note_ct IS NULL) = (object_id IS NULL) AND (note_ct IS NULL) = (note_commit IS NULL))
);
CREATE INDEX followups_record ON followups(record_id, at, id);

CREATE TABLE reviews (
    id bigserial PRIMARY KEY,
    record_id text NOT NULL REFERENCES records(id),
    reviewer text NOT NULL REFERENCES users(username),
    created text NOT NULL,
    object_id text NOT NULL UNIQUE,
    body_ct bytea NOT NULL,
    body_commit bytea NOT NULL,
    row_mac bytea NOT NULL
);
CREATE INDEX reviews_record ON reviews(record_id, id);

-- Decision and note are class C, sealed under the clinical key of `generation`.
CREATE TABLE household_link_reviews (
    id bigserial PRIMARY KEY,
    record_id text NOT NULL REFERENCES records(id),
    other_record_id text NOT NULL REFERENCES records(id),
    reviewer text NOT NULL REFERENCES users(username),
    created text NOT NULL,
    generation integer NOT NULL CHECK (generation >= 1),
    review_ct bytea NOT NULL,
    row_mac bytea NOT NULL
);
CREATE INDEX household_link_reviews_pair ON household_link_reviews(record_id, other_record_id);

CREATE TABLE remembered_logins (
    id bigserial PRIMARY KEY,
    user_id text NOT NULL REFERENCES users(username),
    workstation text NOT NULL CHECK (length(workstation) > 0),
    created text NOT NULL,
    revoked text,
    row_mac bytea NOT NULL
);
CREATE FUNCTION remembered_logins_revoke_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.revoked IS NOT NULL OR NEW.revoked IS NULL OR NEW.id <> OLD.id
        OR NEW.user_id <> OLD.user_id OR NEW.workstation <> OLD.workstation
        OR NEW.created <> OLD.created THEN
        PERFORM gpshare_refuse('a remembered login can only be revoked, once');
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER remembered_logins_revoke_only BEFORE UPDATE ON remembered_logins
    FOR EACH ROW EXECUTE FUNCTION remembered_logins_revoke_only();

CREATE TABLE breakglass_acks (
    event_seq bigint NOT NULL,
    user_id text NOT NULL REFERENCES users(username),
    at text NOT NULL,
    row_mac bytea NOT NULL,
    PRIMARY KEY (event_seq, user_id)
);

-- An acknowledgement names a breakglass_used audit event (the audit table is created by
-- gpshare/store/postgres/audit.py; the function body is resolved when it runs).
CREATE FUNCTION breakglass_acks_name_the_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT action FROM audit WHERE seq = NEW.event_seq) IS DISTINCT FROM 'breakglass_used' THEN
        RAISE EXCEPTION 'a break-glass acknowledgement must name a breakglass_used audit event'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER breakglass_acks_name_the_event BEFORE INSERT ON breakglass_acks
    FOR EACH ROW EXECUTE FUNCTION breakglass_acks_name_the_event();

-- ----- class C (ciphertext) and blind tokens --------------------------------------------------

CREATE TABLE record_summaries (
    record_id text PRIMARY KEY REFERENCES records(id),
    version integer NOT NULL CHECK (version >= 1),
    generation integer NOT NULL CHECK (generation >= 1),
    ct bytea NOT NULL
);
CREATE FUNCTION record_summaries_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT status FROM records WHERE id = OLD.record_id) = 'completed' THEN
        PERFORM gpshare_refuse(format('the summary of completed record %s is never changed',
                                      OLD.record_id));
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER record_summaries_frozen BEFORE UPDATE ON record_summaries
    FOR EACH ROW EXECUTE FUNCTION record_summaries_frozen();

-- With no DELETE anywhere, a draft's replaced tokens are marked superseded rather than
-- removed; lookups use the live ones only. Tokens of a completed record never change.
CREATE TABLE blind_index (
    generation integer NOT NULL CHECK (generation >= 1),
    type text NOT NULL CHECK (type IN ('nhs', 'family|dob', 'given|dob', 'family|given',
                                       'postcode|house')),
    token bytea NOT NULL CHECK (length(token) = 16),
    record_id text NOT NULL REFERENCES records(id),
    superseded boolean NOT NULL DEFAULT false,
    PRIMARY KEY (record_id, generation, type, token)
);
CREATE INDEX blind_index_lookup ON blind_index(type, token) WHERE NOT superseded;
CREATE FUNCTION blind_index_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT status FROM records WHERE id = OLD.record_id) = 'completed' THEN
        PERFORM gpshare_refuse(format('the blind tokens of completed record %s never change',
                                      OLD.record_id));
    END IF;
    IF NEW.record_id <> OLD.record_id OR NEW.generation <> OLD.generation
        OR NEW.type <> OLD.type OR NEW.token <> OLD.token THEN
        PERFORM gpshare_refuse('a blind token is superseded or restored, never edited');
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER blind_index_kept BEFORE UPDATE ON blind_index
    FOR EACH ROW EXECUTE FUNCTION blind_index_kept();

-- ----- class K ------------------------------------------------------------------------------

CREATE TABLE key_bundles (
    user_id text NOT NULL REFERENCES users(username),
    generation integer NOT NULL CHECK (generation >= 0),
    state text NOT NULL CHECK (state IN ('provisional', 'active', 'inert')),
    kdf text NOT NULL,
    salt bytea NOT NULL,
    blob bytea NOT NULL,
    created text NOT NULL,
    PRIMARY KEY (user_id, generation)
);
CREATE FUNCTION key_bundles_keep_identity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.user_id <> OLD.user_id OR NEW.generation <> OLD.generation
        OR NEW.created <> OLD.created THEN
        PERFORM gpshare_refuse('a key bundle keeps its user, generation and creation time');
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER key_bundles_keep_identity BEFORE UPDATE ON key_bundles
    FOR EACH ROW EXECUTE FUNCTION key_bundles_keep_identity();

CREATE TABLE directory (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('user', 'lead-key')),
    user_id text REFERENCES users(username),
    generation integer NOT NULL CHECK (generation >= 0),
    role text CHECK (role IN ('clinician', 'lead', 'admin')),
    public_key bytea NOT NULL,
    active boolean,
    signature bytea,
    created text NOT NULL,
    -- D2: a lead's lead-access X25519 public key (signed with the entry when set)
    lead_access_key bytea,
    CHECK (CASE kind WHEN 'user' THEN user_id IS NOT NULL AND role IS NOT NULL
                                      AND active IS NOT NULL
                     ELSE user_id IS NULL AND role IS NULL AND active IS NULL END),
    CHECK (kind = 'user' OR signature IS NOT NULL)
);
CREATE INDEX directory_user ON directory(user_id, id) WHERE kind = 'user';

CREATE TABLE lead_rotations (
    generation integer PRIMARY KEY CHECK (generation >= 0),
    previous_key bytea NOT NULL,
    new_key bytea NOT NULL,
    signature bytea NOT NULL
);

CREATE TABLE role_key_wraps (
    key_name text NOT NULL CHECK (key_name IN ('clinical', 'lead')),
    generation integer NOT NULL CHECK (generation >= 0),
    recipient text NOT NULL,
    recipient_generation integer NOT NULL CHECK (recipient_generation >= 0),
    wrap bytea NOT NULL,
    PRIMARY KEY (key_name, generation, recipient, recipient_generation)
);
CREATE INDEX role_key_wraps_recipient ON role_key_wraps(recipient, key_name, generation);

CREATE TABLE object_wraps (
    object_kind text NOT NULL,
    object_id text NOT NULL,
    recipient text NOT NULL,
    recipient_generation integer NOT NULL CHECK (recipient_generation >= 0),
    wrap bytea NOT NULL,
    created text NOT NULL,
    PRIMARY KEY (object_kind, object_id, recipient, recipient_generation)
);
CREATE INDEX object_wraps_recipient ON object_wraps(recipient, object_kind, object_id);

-- ----- the vault header (DESIGN §10.3: "the header lives in tables") -------------------------
-- Each keyed save of the header (slots, break-glass slot, disabled users, KDF defaults: what a
-- workstation's vault.json holds on an embedded vault) appends a new generation, MACed inside
-- its body under HKDF(practice, "header-mac") exactly as vault.json is, and the same
-- transaction appends a `header_saved` audit event naming its generation and SHA-256, so a
-- header is valid only if its hash is in the chain. The newest generation is the header.
CREATE TABLE vault_header (
    generation bigint PRIMARY KEY CHECK (generation >= 1),
    body text NOT NULL,
    sha256 text NOT NULL,
    created text NOT NULL
);
-- Failed-unlock counters and reports: written before anyone holds a key, so not MAC-able
-- (vault.json keeps them outside its MAC too); one row, replaced by each failure.
CREATE TABLE vault_unlock_reports (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    body text NOT NULL
);

-- ----- append-only and never-deleted, by trigger (the owner included) ------------------------

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['addenda', 'letters', 'followups', 'reviews',
                             'household_link_reviews', 'breakglass_acks', 'directory',
                             'lead_rotations', 'role_key_wraps', 'object_wraps', 'vault_header']
    LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON %I FOR EACH ROW '
                       'EXECUTE FUNCTION gpshare_append_only()', t || '_append_only', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['users', 'settings', 'practice_ca', 'signing_keys', 'records',
                             'referral_states', 'addenda', 'letters', 'followups', 'reviews',
                             'household_link_reviews', 'remembered_logins', 'breakglass_acks',
                             'record_summaries', 'blind_index', 'key_bundles', 'directory',
                             'lead_rotations', 'role_key_wraps', 'object_wraps',
                             'vault_header', 'vault_unlock_reports']
    LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE DELETE ON %I FOR EACH ROW '
                       'EXECUTE FUNCTION gpshare_no_delete()', t || '_no_delete', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT '
                       'EXECUTE FUNCTION gpshare_no_delete()', t || '_no_truncate', t);
        EXECUTE format('REVOKE ALL ON %I FROM PUBLIC', t);
    END LOOP;
END $$;

