-- Keep the unsigned letter beside the signed one: a password-protected copy for secure
-- email must be encrypted *before* it is signed, since encrypting a signed PDF breaks
-- the signature.
ALTER TABLE letters ADD COLUMN unsigned_pdf BLOB;
