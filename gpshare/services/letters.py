"""Referral letters: preview, sign, store, open, protect and verify (session.letters)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gpshare import navigator
from gpshare.clock import today
from gpshare.errors import NotFound, ServiceError, ValidationFailed
from gpshare.forms import Form
from gpshare.letter_template import LetterTemplate, LetterTemplateError
from gpshare.records import LetterMeta, Record, parse_date
from gpshare.services import _sealed_objects, _sealing
from gpshare.services._base import Service
from gpshare.store import keywrap
from gpshare.store.port import ReadTx


@dataclass(frozen=True)
class LetterResult:
    """A signed letter as stored on its record."""

    letter_id: int
    record_id: str
    sha256: str
    pdf: bytes
    filename: str


class LettersService(Service):
    """Signed referral letters of completed records."""

    def _issuer_of(self, cert_pem: bytes) -> bytes:
        from gpshare import signing

        practice_ca = self._session.users._practice_ca_pem()
        for candidate in [practice_ca, *self._session.users.trusted_issuers()]:
            if signing.issued_by(cert_pem, candidate):
                return candidate
        return practice_ca

    def letter_unavailable_reason(self, record: Record) -> str | None:
        """Why a record has no letter (None when a letter can be made)."""
        self._require("view_record", record_id=record.id)
        if record.is_draft:
            return "The assessment is still a draft: complete it first; the letter is made from the completed record."
        if not record.letter_required:
            return (
                "This record's decision was not to share now (monitor and review), so there is no referral letter. "
                "If the concern grows, start a new assessment."
            )
        return None

    def _letter_template(self, form: Form) -> LetterTemplate:
        """The letter template of the record's form version, or a clear error if it is broken."""
        from gpshare import letter as letter_mod

        try:
            return letter_mod.letter_template_for(form)
        except LetterTemplateError as exc:
            raise ServiceError(
                f"The letter cannot be made because its template is missing or broken ({exc}). "
                "Reinstall gpshare or ask your supplier for help."
            ) from exc

    def generate_letter(self, record_id: str, password: str | None) -> LetterResult:
        """Build and sign the referral letter with the acting user's own key.

        The password is asked again because the signing key is wrapped with it: nobody
        else, not even an administrator, can sign as this clinician. `None` reuses the key
        derivation of this session's password unlock (one command line, one password, one
        Argon2id); sessions unlocked otherwise must pass the password.
        """
        from gpshare import letter as letter_mod
        from gpshare import signing

        self._require("sign_letter", record_id=record_id)
        record = self._readable(record_id, "sign_letter")  # opened on v2 (answers are N)
        if record.clinician != self._session.user.username:
            raise self._session._deny(
                "sign_letter",
                record_id,
                "Not permitted: only the clinician who completed the assessment can sign its letter.",
            )
        if (reason := self.letter_unavailable_reason(record)) is not None:
            raise ValidationFailed(reason, [])
        practice = self._session.practice.practice_details()
        missing = letter_mod.missing_practice_details(practice)
        if missing:
            raise ValidationFailed(
                f"The practice details for the letterhead are incomplete (missing: {', '.join(missing)}). "
                "Ask the practice administrator to fill them in under Admin › Settings.",
                [{"field": "settings", "message": m} for m in missing],
            )
        signer = self._signing_key(password)
        ca_cert = self._issuer_of(signer.cert_pem)
        form = self._session.assessments.form_for(record)
        evaluation = navigator.evaluate(
            form,
            record.answers,
            navigator.Context(today=parse_date(record.completed) or today(self._session.clock)),
        )
        now = self._session.clock.now()
        data = self._letter_input(
            record,
            record.answers,
            record.outcome or {},
            datetime.fromisoformat(record.completed or record.created),
            now,
            evaluation.age,
        )
        try:
            pdf = letter_mod.build_letter(data)
            signed = signing.sign_pdf(
                pdf,
                signer,
                ca_cert,
                now=now,
                reason="Safeguarding referral",
                location=practice.name,
            )
        except signing.SigningError as exc:
            self._session.audit("letter_signing_failed", record_id, {"reason": type(exc).__name__})
            raise ServiceError(str(exc)) from exc
        digest = hashlib.sha256(signed).hexdigest()
        created = self._session.now_iso()
        if self._session.keys is not None:
            # Vault v2: both PDFs are N, each under its own object key; `sha256` (the document
            # hash verify-letter looks up) stays M.
            sealed, kept = _sealing.seal_letter(
                self._session.keys, _sealed_objects.row_of(record), created, signed, pdf
            )
            letter_id = self._session._write(
                "letter_generated",
                lambda tx: tx.add_sealed_letter(
                    record_id, created, self._session.user.username, digest, sealed, kept
                ),
                record_id,
                {"sha256": digest, **_sealed_objects.audit_details(sealed, kept)},
            )
        else:
            letter_id = self._session._write(
                "letter_generated",
                lambda tx: tx.add_letter(
                    record_id, created, self._session.user.username, digest, signed, pdf
                ),
                record_id,
                {"sha256": digest},
            )
        return LetterResult(
            letter_id, record_id, digest, signed, letter_mod.letter_filename(record_id, now)
        )

    def _letter_input(
        self,
        record: Record,
        answers: Mapping[str, Any],
        outcome: Mapping[str, Any],
        completed_at: datetime,
        signed_at: datetime,
        child_age: int | None,
    ) -> Any:
        """The letter's inputs: one place, so the preview and the signed letter cannot differ."""
        from gpshare import letter as letter_mod

        form = self._session.assessments.form_for(record)
        practice = self._session.practice.practice_details()
        prior = [
            letter_mod.PriorConcern(
                p.created, p.pathway or "", p.decision or "", p.review_date, p.author
            )
            for p in self._session.assessments._prior_records(answers, exclude=record.id)
            if p.created <= (parse_date(record.completed) or p.created)
        ]
        settings = self._session.practice.settings()
        return letter_mod.LetterInput(
            record_id=record.id,
            practice=practice,
            referrer=letter_mod.Referrer(
                self._session.user.full_name,
                self._session.user.role_title,
                self._session.user.gmc_number,
                f"{settings['practice_phone']} · {settings['practice_secure_email']}",
            ),
            answers=answers,
            outcome=outcome,
            completed_at=completed_at,
            signed_at=signed_at,
            prior_concerns=prior,
            option_label=form.option_label,
            child_age=child_age,
            template=self._letter_template(form),
        )

    def preview_letter(self, record_id: str) -> bytes:
        """The letter a draft would get if it were completed and signed now, unsigned and
        marked "Draft – not signed" on every page. Only its clinician may preview it.

        Raises ValidationFailed (with the reason) when the draft cannot be completed yet or
        needs no letter.
        """
        from gpshare import letter as letter_mod

        self._require("sign_letter", record_id=record_id)
        record = self._own_draft(record_id, "preview_letter")
        form = self._session.assessments.form_for(record)
        evaluation = self._session.assessments.evaluate(form, record.answers, exclude=record_id)
        if evaluation.errors:
            raise ValidationFailed(
                "The letter can be previewed once every item on the check page is answered.",
                evaluation.errors,
            )
        outcome = evaluation.outcome.to_dict()
        if not outcome.get("letter_required"):
            raise ValidationFailed(
                "This decision needs no referral letter, so there is nothing to preview.", []
            )
        missing = letter_mod.missing_practice_details(self._session.practice.practice_details())
        if missing:
            raise ValidationFailed(
                f"The practice details for the letterhead are incomplete (missing: {', '.join(missing)}). "
                "Ask the practice administrator to fill them in under Admin › Settings.",
                [{"field": "settings", "message": m} for m in missing],
            )
        now = self._session.clock.now()
        # Completion stores the seconds-precise ISO time; the preview uses the same rounding.
        completed_at = datetime.fromisoformat(now.isoformat(timespec="seconds"))
        data = self._letter_input(
            record, evaluation.cleaned, outcome, completed_at, now, evaluation.age
        )
        return letter_mod.build_letter(data, draft_mark=letter_mod.DRAFT_MARK)

    def _signing_key(self, password: str | None) -> Any:
        """The acting user's signing key and certificate, unwrapped with their own password."""
        from gpshare import signing

        with self._session._read() as tx:
            stored = tx.active_signing_key(self._session.user.username)
        if stored is None:
            raise ServiceError(
                "You have no signing certificate yet. Ask the practice administrator to issue one "
                "(Admin › Users › Reset password issues a new certificate)."
            )
        user_secret = (
            self._session._verify_password(password)
            if password is not None
            else self._session._unlock_secret()
        )
        key_pem = keywrap.unwrap_signing_key(
            user_secret,
            stored[1].nonce,
            stored[1].wrapped,
            self._session.vault.vault_id,
            self._session.user.username,
        )
        if key_pem is None:
            raise ServiceError(
                "Your signing key cannot be opened with your password. Ask the practice "
                "administrator to issue a new certificate."
            )
        return signing.KeyAndCert(key_pem, stored[1].cert_pem)

    def protected_copy(self, letter_id: int, login_password: str, pdf_password: str) -> bytes:
        """An AES-256 password-protected, freshly signed copy of a letter for secure email.

        The PDF password is never stored. The copy is encrypted first and then signed,
        because encrypting a signed PDF would break its signature.
        """
        from gpshare import signing

        self._require("letter_protected_copy")
        if len(pdf_password) < 10:
            raise ValidationFailed(
                "The PDF password must be at least 10 characters; send it to the recipient "
                "separately (for example by phone).",
                [{"field": "pdf_password", "message": "too short"}],
            )
        if pdf_password == login_password:
            raise ValidationFailed(
                "Do not use your gpshare password as the PDF password; choose a different one.",
                [{"field": "pdf_password", "message": "same as login password"}],
            )
        with self._session._read() as tx:
            found = tx.letter_pdf(letter_id)
        if found is None:
            raise NotFound(f"No letter {letter_id}.")
        meta = found[0]
        record = self._readable(meta.record_id, "letter_protected_copy")
        if record.clinician != self._session.user.username:
            raise self._session._deny(
                "letter_protected_copy",
                record.id,
                "Not permitted: only the clinician who signed the letter can make a protected copy.",
            )
        with self._session._read() as tx:
            unsigned = self._stored_pdf(tx, record, meta, unsigned=True)
        if unsigned is None:
            raise ServiceError(
                "This letter was made by an older version without a copy for protection; "
                "generate a new letter from the record first."
            )
        signer = self._signing_key(login_password)
        ca_cert = self._issuer_of(signer.cert_pem)
        try:
            encrypted = signing.encrypt_pdf(unsigned, pdf_password.encode("utf-8"))
            signed = signing.sign_pdf(
                encrypted,
                signer,
                ca_cert,
                now=self._session.clock.now(),
                reason="Safeguarding referral",
                location=self._session.practice.settings()["practice_name"],
                pdf_password=pdf_password.encode("utf-8"),
            )
        except signing.SigningError as exc:
            raise ServiceError(str(exc)) from exc
        self._session.audit(
            "letter_protected_copy",
            record.id,
            {"letter_id": letter_id, "sha256": hashlib.sha256(signed).hexdigest()},
        )
        return signed

    def list_letters(self, record_id: str) -> list[Any]:
        """The signed letters stored with a record."""
        self._require("view_record", record_id=record_id)
        self._readable(record_id, "view_record")
        with self._session._read() as tx:
            return tx.letters(record_id)

    def open_letter(self, letter_id: int) -> LetterResult:
        """A stored letter's exact signed bytes (audited)."""
        from gpshare.letter import letter_filename

        self._require("view_letter")
        with self._session._read() as tx:
            found = tx.letter_pdf(letter_id)
        if found is None:
            raise NotFound(f"No letter {letter_id}.")
        meta, pdf = found
        record = self._readable(meta.record_id, "view_letter")
        if self._session.keys is not None:
            # A sealed letter's row holds no PDF (x''): open it for this record's reader.
            with self._session._read() as tx:
                pdf = self._stored_pdf(tx, record, meta) or pdf
        self._session.audit("letter_opened", meta.record_id, {"letter_id": letter_id})
        created = datetime.fromisoformat(meta.created)
        return LetterResult(
            meta.id, meta.record_id, meta.sha256, pdf, letter_filename(meta.record_id, created)
        )

    def _stored_pdf(
        self, tx: ReadTx, record: Record, meta: LetterMeta, *, unsigned: bool = False
    ) -> bytes | None:
        """A letter's signed (or unsigned) PDF: opened on a v2 vault when the letter is sealed
        (the caller has checked the record may be read), else as stored."""
        sealed = (
            _sealed_objects.letter_pdfs(self._session, tx, record, meta)
            if self._session.keys is not None
            else None
        )
        if sealed is not None:
            return sealed[1] if unsigned else sealed[0]
        if unsigned:
            return tx.letter_unsigned_pdf(meta.id)
        found = tx.letter_pdf(meta.id)
        return found[1] if found else None

    def record_letter_event(
        self, letter_id: int, action: str, details: Mapping[str, Any] | None = None
    ) -> None:
        """Audit a print, save, export or protected copy of a letter."""
        self._require("view_letter")
        if action not in (
            "letter_printed",
            "letter_saved",
            "letter_exported",
            "letter_protected_copy",
        ):
            raise ValueError(action)
        with self._session._read() as tx:
            found = tx.letter_pdf(letter_id)
        if found is None:
            raise NotFound(f"No letter {letter_id}.")
        self._readable(found[0].record_id, action)
        self._session.audit(
            action, found[0].record_id, {"letter_id": letter_id, **dict(details or {})}
        )

    def save_letter(self, letter_id: int, target: Path, *, action: str = "letter_saved") -> Path:
        """Write a stored letter's signed bytes atomically (0600) and audit it."""
        from gpshare.store.files import atomic_write

        result = self.open_letter(letter_id)
        atomic_write(Path(target), result.pdf)
        self.record_letter_event(letter_id, action, {"sha256": result.sha256})
        return Path(target)

    def verify_letter(self, pdf: bytes) -> tuple[Any, Any]:
        """(Verification against the practice CA, the stored letter whose hash matches or None)."""
        from gpshare import signing

        self._require("verify_letter")

        cert = self._session.users._practice_ca_pem()
        result = signing.verify_pdf(pdf, [cert, *self._session.users.trusted_issuers()])
        with self._session._read() as tx:
            match = tx.letter_by_hash(hashlib.sha256(pdf).hexdigest())
        self._session.audit(
            "letter_verified",
            match.record_id if match else None,
            {"ok": result.ok, "matched": match is not None},
        )
        return result, match
