-- Keep the unsigned letter beside the signed one: a password-protected copy for secure
-- email must be encrypted *before* it is signed, since encrypting a signed PDF breaks
-- the signature.
ALTER TABLE letters ADD COLUMN unsigned_pdf BLOB;

-- Lead reviews, follow-up events and signed letters are append-only, like addenda.
CREATE TRIGGER reviews_append_only BEFORE UPDATE ON reviews
BEGIN
    SELECT RAISE(ABORT, 'lead reviews are append-only');
END;
CREATE TRIGGER reviews_no_delete BEFORE DELETE ON reviews
BEGIN
    SELECT RAISE(ABORT, 'lead reviews are append-only');
END;
CREATE TRIGGER followups_append_only BEFORE UPDATE ON followups
BEGIN
    SELECT RAISE(ABORT, 'follow-up events are append-only');
END;
CREATE TRIGGER followups_no_delete BEFORE DELETE ON followups
BEGIN
    SELECT RAISE(ABORT, 'follow-up events are append-only');
END;
CREATE TRIGGER letters_no_delete BEFORE DELETE ON letters
BEGIN
    SELECT RAISE(ABORT, 'signed letters cannot be deleted');
END;
