-- Lookups that run while a clinician types, and the lead's filters and search, answered from
-- indexes instead of reading (and decrypting) every record (docs/performance.md).

-- Earlier records for the same child (Session.prior_records, on every wizard evaluation):
-- child_dob was only the second column of an index, and status-first indexes won the plan.
CREATE INDEX records_child_dob ON records(child_dob, status);
CREATE INDEX records_child_nhs_status ON records(child_nhs, status);
-- Pathway + date range, newest first, from the index alone (with `created >= ? AND created < ?`).
CREATE INDEX records_pathway_created ON records(pathway, created, updated);
-- Search results ordered by `updated` without reading each matching record's row.
CREATE INDEX records_id_updated ON records(id, updated);

-- Full-text index keyed by a small integer map: replacing one record's entry is a rowid delete
-- (the old `DELETE … WHERE record_id = ?` on an UNINDEXED column scanned the whole index on
-- every save), and MATCH yields record ids without reading the indexed text back.
-- contentless_delete needs SQLite 3.43+ (SQLCipher 4.19 bundles 3.53).
CREATE TABLE records_search (
    id INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL UNIQUE REFERENCES records(id)
);
INSERT INTO records_search (record_id)
    SELECT DISTINCT f.record_id FROM records_fts f JOIN records r ON r.id = f.record_id;
CREATE VIRTUAL TABLE records_fts_v2 USING fts5(body, content = '', contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 2');
INSERT INTO records_fts_v2 (rowid, body)
    SELECT s.id, f.body FROM records_fts f JOIN records_search s ON s.record_id = f.record_id GROUP BY s.id;
DROP TABLE records_fts;
ALTER TABLE records_fts_v2 RENAME TO records_fts;
