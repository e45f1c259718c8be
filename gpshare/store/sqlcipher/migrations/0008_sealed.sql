-- Vault version 2, step 4 (docs/vault-v2.md §1, §1.3 and §7; DESIGN §10.1): the columns and
-- tables that hold sealed records. Additive: every v1 column stays (step 8's migration drops
-- them), and nothing writes here until the services are wired to the record codec
-- (gpshare/services/_sealing.py). Ciphertexts and commitments are BLOBs made by
-- gpshare/store/keys; no plaintext of class C or N is stored in any new column. As §10.3 asks:
-- append-only where a row is a fact (addenda, letters, follow-ups, reviews, household reviews).

-- Records (class M row + N answers). `version` is bumped by every sealed write and bound into
-- the answers' and the summary's AAD, so an older ciphertext cannot be put back; a v1 row
-- keeps 0. `answers_commit` is the object-key commitment of the answers object.
ALTER TABLE records ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE records ADD COLUMN answers_ct BLOB;
ALTER TABLE records ADD COLUMN answers_commit BLOB;
CREATE TRIGGER records_version_goes_up BEFORE UPDATE OF version ON records
WHEN NEW.version <= OLD.version
BEGIN
    SELECT RAISE(ABORT, 'a sealed record''s version only goes up: another save got there first');
END;
-- The answers object key is made once per record: its commitment never changes.
CREATE TRIGGER records_commitment_kept BEFORE UPDATE OF answers_commit ON records
WHEN OLD.answers_commit IS NOT NULL AND NEW.answers_commit IS NOT OLD.answers_commit
BEGIN
    SELECT RAISE(ABORT, 'a record''s answers commitment never changes');
END;

-- The C summary of each record (child identity, outcome, author, blind-index values) under
-- HKDF(clinical_g, "summary"), bound to record id, generation and version. One row per record,
-- replaced with each draft save; a list page reads its summaries by primary key.
CREATE TABLE record_summaries (
    record_id TEXT PRIMARY KEY REFERENCES records(id),
    version INTEGER NOT NULL CHECK (version >= 1),
    generation INTEGER NOT NULL CHECK (generation >= 1),
    ct BLOB NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER record_summaries_frozen BEFORE UPDATE ON record_summaries
WHEN (SELECT status FROM records WHERE id = OLD.record_id) = 'completed'
BEGIN
    SELECT RAISE(ABORT, 'the summary of a completed record is never changed');
END;
CREATE TRIGGER record_summaries_no_delete BEFORE DELETE ON record_summaries
WHEN (SELECT status FROM records WHERE id = OLD.record_id) = 'completed'
BEGIN
    SELECT RAISE(ABORT, 'the summary of a completed record is never deleted');
END;

-- Blind indexes (keys.blind.record_tokens): HMAC tokens under HKDF(clinical_g, "bidx/<type>"),
-- one set per record and clinical generation. A lookup is an index search on (type, token);
-- a match is only probable until the summary confirms it. No word or prefix token is stored.
CREATE TABLE blind_index (
    generation INTEGER NOT NULL CHECK (generation >= 1),
    type TEXT NOT NULL CHECK (type IN ('nhs', 'family|dob', 'given|dob', 'family|given', 'postcode|house')),
    token BLOB NOT NULL CHECK (length(token) = 16),
    record_id TEXT NOT NULL REFERENCES records(id),
    PRIMARY KEY (record_id, generation, type, token)
) WITHOUT ROWID;
CREATE INDEX blind_index_lookup ON blind_index(type, token);
CREATE TRIGGER blind_index_no_update BEFORE UPDATE ON blind_index
BEGIN
    SELECT RAISE(ABORT, 'blind index tokens are replaced, never edited');
END;
CREATE TRIGGER blind_index_completed_kept BEFORE DELETE ON blind_index
WHEN (SELECT status FROM records WHERE id = OLD.record_id) = 'completed'
BEGIN
    SELECT RAISE(ABORT, 'the blind index tokens of a completed record are never deleted');
END;

-- N objects of the other tables, each under its own object key (wrapped in object_wraps under
-- its kind and `object_id`, a random id made before the row exists so the AAD can name it).
ALTER TABLE addenda ADD COLUMN object_id TEXT;
ALTER TABLE addenda ADD COLUMN body_ct BLOB;
ALTER TABLE addenda ADD COLUMN body_commit BLOB;
CREATE UNIQUE INDEX addenda_object ON addenda(object_id) WHERE object_id IS NOT NULL;

-- A letter's signed and unsigned PDFs are two objects (kinds 'letter', 'letter-unsigned').
ALTER TABLE letters ADD COLUMN object_id TEXT;
ALTER TABLE letters ADD COLUMN pdf_ct BLOB;
ALTER TABLE letters ADD COLUMN pdf_commit BLOB;
ALTER TABLE letters ADD COLUMN unsigned_object_id TEXT;
ALTER TABLE letters ADD COLUMN unsigned_ct BLOB;
ALTER TABLE letters ADD COLUMN unsigned_commit BLOB;
CREATE UNIQUE INDEX letters_object ON letters(object_id) WHERE object_id IS NOT NULL;
CREATE TRIGGER letters_sealed_kept BEFORE UPDATE OF object_id, pdf_ct, pdf_commit, unsigned_object_id, unsigned_ct, unsigned_commit ON letters
BEGIN
    SELECT RAISE(ABORT, 'a signed letter''s sealed copies are never changed');
END;

-- A follow-up's note and details are one object (kind 'followup-note').
ALTER TABLE followups ADD COLUMN object_id TEXT;
ALTER TABLE followups ADD COLUMN note_ct BLOB;
ALTER TABLE followups ADD COLUMN note_commit BLOB;
CREATE UNIQUE INDEX followups_object ON followups(object_id) WHERE object_id IS NOT NULL;

-- Reviews: verdict, comments and learning are one object (kind 'review'). v1 made `verdict`
-- NOT NULL, which a sealed row cannot meet without storing it in the clear, so the table is
-- rebuilt with the v1 columns unchanged but a row holding either the v1 verdict or the
-- ciphertext (DROP TABLE's implicit delete fires no trigger; no table references reviews).
CREATE TABLE reviews_v8 (
    id INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL REFERENCES records(id),
    reviewer TEXT NOT NULL REFERENCES users(username),
    created TEXT NOT NULL,
    verdict TEXT CHECK (verdict IN ('reasonable', 'needs_discussion')),
    comments TEXT,
    learning TEXT,
    object_id TEXT UNIQUE,
    body_ct BLOB,
    body_commit BLOB,
    CHECK ((verdict IS NULL) = (body_ct IS NOT NULL)),
    CHECK ((body_ct IS NULL) = (object_id IS NULL) AND (body_ct IS NULL) = (body_commit IS NULL))
);
INSERT INTO reviews_v8 (id, record_id, reviewer, created, verdict, comments, learning)
    SELECT id, record_id, reviewer, created, verdict, comments, learning FROM reviews;
DROP TABLE reviews;
ALTER TABLE reviews_v8 RENAME TO reviews;
CREATE INDEX reviews_record ON reviews(record_id);
CREATE TRIGGER reviews_append_only BEFORE UPDATE ON reviews
BEGIN
    SELECT RAISE(ABORT, 'lead reviews are append-only');
END;
CREATE TRIGGER reviews_no_delete BEFORE DELETE ON reviews
BEGIN
    SELECT RAISE(ABORT, 'lead reviews are append-only');
END;

-- Household link reviews: decision and note are class C, sealed together as `review_ct` under
-- HKDF(clinical_g, "summary") with kind 'household-review' (keys.envelopes.SummaryBinding).
-- Rebuilt for the same reason as reviews (v1's decision is NOT NULL).
CREATE TABLE household_link_reviews_v8 (
    id INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL REFERENCES records(id),
    other_record_id TEXT NOT NULL REFERENCES records(id),
    decision TEXT CHECK (decision IN ('same_household', 'not_related')),
    reviewer TEXT NOT NULL REFERENCES users(username),
    created TEXT NOT NULL,
    note TEXT,
    generation INTEGER CHECK (generation >= 1),
    review_ct BLOB,
    CHECK ((decision IS NULL) = (review_ct IS NOT NULL)),
    CHECK ((review_ct IS NULL) = (generation IS NULL))
);
INSERT INTO household_link_reviews_v8 (id, record_id, other_record_id, decision, reviewer, created, note)
    SELECT id, record_id, other_record_id, decision, reviewer, created, note FROM household_link_reviews;
DROP TABLE household_link_reviews;
ALTER TABLE household_link_reviews_v8 RENAME TO household_link_reviews;
CREATE INDEX household_link_reviews_pair ON household_link_reviews(record_id, other_record_id);
CREATE TRIGGER household_link_reviews_append_only BEFORE UPDATE ON household_link_reviews
BEGIN
    SELECT RAISE(ABORT, 'household link reviews are append-only');
END;
CREATE TRIGGER household_link_reviews_no_delete BEFORE DELETE ON household_link_reviews
BEGIN
    SELECT RAISE(ABORT, 'household link reviews are append-only');
END;
