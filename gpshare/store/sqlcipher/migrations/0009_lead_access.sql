-- Decision D2 (docs/vault-v2.md §2): a lead's directory entry also publishes the public half of
-- their lead-access X25519 pair, the only recipient of lead-key wraps made for them. The pair's
-- private half is sealed in their bundle under the password KEK alone (a remembered login's copy
-- omits it), so a keyring unlock cannot open the lead key. NULL for every other entry; the
-- entry's signature covers the column when it is set.
ALTER TABLE directory ADD COLUMN lead_access_key BLOB
    CHECK (lead_access_key IS NULL OR (kind = 'user' AND role = 'lead' AND length(lead_access_key) = 32));
