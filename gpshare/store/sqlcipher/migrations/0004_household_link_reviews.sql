-- The lead's confirmation (or rejection) of a suggested household link between a child's
-- record and another child's record. Append-only: the latest decision for a pair counts.
CREATE TABLE household_link_reviews (
    id INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL REFERENCES records(id),
    other_record_id TEXT NOT NULL REFERENCES records(id),
    decision TEXT NOT NULL CHECK (decision IN ('same_household', 'not_related')),
    reviewer TEXT NOT NULL REFERENCES users(username),
    created TEXT NOT NULL,
    note TEXT
);
CREATE INDEX household_link_reviews_pair ON household_link_reviews(record_id, other_record_id);
CREATE TRIGGER household_link_reviews_append_only BEFORE UPDATE ON household_link_reviews
BEGIN
    SELECT RAISE(ABORT, 'household link reviews are append-only');
END;
CREATE TRIGGER household_link_reviews_no_delete BEFORE DELETE ON household_link_reviews
BEGIN
    SELECT RAISE(ABORT, 'household link reviews are append-only');
END;
