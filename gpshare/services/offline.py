"""Drafts while the practice server is unreachable (session.offline; DESIGN §10.3).

The wizard saves through here: a save the server cannot take goes to this computer's
encrypted cache and the result says so (no exception: the GP is mid-consultation); `flush`
stores the cached drafts when the server is back. The sealing and the rules are in
gpshare/services/_offline_drafts.py; on an embedded vault (never unreachable) every call is
the ordinary one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gpshare.errors import NotFound, SaveOutcomeUnknown, ServerUnreachableError, ServiceError
from gpshare.records import Record
from gpshare.services import _offline_drafts
from gpshare.services._base import Service
from gpshare.services._offline_drafts import DraftSave, FlushReport, WaitingDraft
from gpshare.services.assessments import DEFAULT_FORM_ID

__all__ = ["DraftSave", "FlushReport", "OfflineDraftsService", "WaitingDraft"]


class OfflineDraftsService(Service):
    """Saving drafts with the server away, and storing them when it is back (own drafts)."""

    def save_draft(
        self,
        record_id: str,
        answers: Mapping[str, Any],
        current_step: str | None = None,
        *,
        autosave: bool = False,
    ) -> DraftSave:
        """Save a draft on the server, or, when it cannot be reached, in this computer's
        encrypted cache (`offline` then holds the message to show). Once the server has been
        found unreachable, saves go straight to the cache until `flush` reaches it."""
        self._require("save_draft")
        session = self._session
        if session.keys is not None and _offline_drafts.is_offline(session):
            record = _offline_drafts.cache_draft(session, record_id, answers, current_step)
            return DraftSave(record, _offline_drafts.SAVED_OFFLINE)
        try:
            saved = session.assessments.save_draft(
                record_id, answers, current_step, autosave=autosave
            )
        except ServerUnreachableError:
            if session.keys is None:
                raise  # a version-1 vault is never on a server
            record = _offline_drafts.cache_draft(session, record_id, answers, current_step)
            return DraftSave(record, _offline_drafts.SAVED_OFFLINE)
        return DraftSave(saved)

    def start_assessment(
        self, form_id: str = DEFAULT_FORM_ID, answers: Mapping[str, Any] | None = None
    ) -> DraftSave:
        """Start a draft on the server, or, when it cannot be reached, on this computer (a new
        record id made here; the draft goes to the server at the next flush)."""
        self._require("start_assessment")
        session = self._session
        if session._uncertain_start is not None:
            # The last start's COMMIT was cut off: it may be on the server. Use it if so;
            # starting another (here or in the cache) could leave the child twice.
            found = self._uncertain(session._uncertain_start)
            if found is not None:
                return DraftSave(found)
        if session.keys is None or not _offline_drafts.is_offline(session):
            try:
                return DraftSave(session.assessments.start_assessment(form_id, answers))
            except SaveOutcomeUnknown as exc:
                session._uncertain_start = exc.record_id
                raise
            except ServerUnreachableError:
                if session.keys is None:
                    raise
        record = _offline_drafts.start_offline(session, form_id, answers)
        return DraftSave(record, _offline_drafts.SAVED_OFFLINE)

    def _uncertain(self, record_id: str) -> Record | None:
        """The draft a cut-off start may have stored: the record when the server holds it,
        None when it does not (the start was not applied); while the server is still away,
        the cut-off start's own words again (no second draft is started meanwhile)."""
        session = self._session
        try:
            record = session._readable(record_id, "view_record")
        except NotFound:
            session._uncertain_start = None
            return None
        except ServerUnreachableError as exc:
            raise SaveOutcomeUnknown(
                f"{exc} The assessment started just before the connection was lost may or may "
                "not be on the server, so no second one was started: try again when the server "
                "answers (it is then used if it is there)."
            ) from exc
        session._uncertain_start = None
        return record

    def flush(self) -> FlushReport:
        """Store every draft of the user cached on this computer (audited, as ordinary saves
        marked offline); each file is removed only after the server committed it. A draft
        someone else saved meanwhile is refused naming them, and its file kept."""
        self._require("save_draft")
        if self._session.keys is None:
            return FlushReport()
        return _offline_drafts.flush(self._session)

    def waiting(self) -> list[WaitingDraft]:
        """The user's drafts waiting in this computer's cache (with the child's name)."""
        self._require("save_draft")
        if self._session.keys is None:
            return []
        return _offline_drafts.waiting(self._session)

    def open_cached(self, path: Path) -> Record:
        """Open a cache file: its author's session with their own key, or a lead's session
        that holds the lead key (a lead reading a colleague's draft left on a workstation;
        audited). Refused, naming the file, when it does not open."""
        self._require("view_record")
        session = self._session
        if session.keys is None:
            raise ServiceError("This vault keeps no offline drafts (it is a version 1 vault).")
        draft, record = _offline_drafts.open_file(session, path)
        if draft.author != session.user.username:
            session.audit("offline_draft_opened", draft.record_id, {"file": path.name})
        return record
