-- Indexes for a busy practice's lists (tens of thousands of records), and a table of
-- normalised carer names and addresses so household links are an index lookup rather
-- than a scan of every record's answers.
CREATE INDEX records_updated ON records(updated);
CREATE INDEX records_status_updated ON records(status, updated);
CREATE INDEX records_pathway_updated ON records(pathway, updated);
CREATE INDEX records_consent_updated ON records(consent_basis, updated);
CREATE INDEX records_clinician_updated ON records(clinician, updated);
CREATE INDEX records_review ON records(pathway, review_date);
CREATE INDEX followups_event ON followups(record_id, event);
-- Covering indexes: the dashboard's aggregates never touch the (large) record rows.
CREATE INDEX records_dashboard ON records(status, completed, pathway, consent_basis, created, id);
CREATE INDEX followups_first ON followups(event, record_id, at);

CREATE TABLE record_links (
    record_id TEXT NOT NULL REFERENCES records(id),
    kind TEXT NOT NULL CHECK (kind IN ('carer', 'address')),
    key TEXT NOT NULL
);
CREATE INDEX record_links_key ON record_links(kind, key);
CREATE INDEX record_links_record ON record_links(record_id);
