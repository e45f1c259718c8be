"""Drafts kept on the workstation while the practice server is unreachable (DESIGN §10.3
"Server unreachable"; the files: gpshare/store/offline_drafts.py).

A save that meets ServerUnreachableError is sealed into the cache instead: the answers exactly
as the server row would hold them (the draft's object key, bound to the record, the next
version, the author and the form) and the key wrapped for the author and for the lead public
key the session verified against the user's pin at unlock — never a key fetched from the
server now. A draft can be started offline (the record id and object key are made here).
From then on the session's saves go to the cache until a flush stores every cached draft of
the user through the normal optimistic path; a draft someone else saved meanwhile is refused
naming them, and its file is kept. Completing needs the server.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpshare.errors import (
    KeyNotHeld,
    NotFound,
    ServerUnreachableError,
    ServiceError,
    StaleVersionError,
    ValidationFailed,
)
from gpshare.forms import load_form_by_id
from gpshare.records import Record, new_record_id
from gpshare.services import _sealed_records, _sealing
from gpshare.services._records import _child, _json_safe
from gpshare.store import keys as k
from gpshare.store import offline_drafts
from gpshare.store.keys.errors import KeyHierarchyError
from gpshare.store.offline_drafts import CachedDraft, CachedWrap, OfflineDraftError
from gpshare.store.port import ObjectWrap, RecordRow, SealedRecord

if TYPE_CHECKING:
    from gpshare.services.session import Session

# The kind of the object holding a cached draft's step, times and author's name (its AAD and
# the answers' differ only in kind, so neither can stand in for the other).
META_KIND = "offline-draft-meta"
SAVED_OFFLINE = (
    "Server unreachable — this draft is kept encrypted on this computer and will be saved "
    "when the server is back."
)
COMPLETE_OFFLINE = (
    "Completing needs the practice server, which cannot be reached at the moment. Your draft "
    "is safe on this computer (kept encrypted) and will be saved when the server is back; "
    "complete it then."
)


@dataclass(frozen=True)
class DraftSave:
    """What a draft save did: `record` as saved, and `offline` (the message to show) when it
    went to this computer's cache because the server could not be reached."""

    record: Record
    offline: str | None = None


@dataclass(frozen=True)
class WaitingDraft:
    """A draft of the user waiting in this computer's cache: the child's name (from the
    decrypted answers; "" when the file does not open), when it was typed, and the problem
    when it cannot be used."""

    record_id: str
    file: str
    child: str
    updated: str
    new: bool
    problem: str | None = None


@dataclass(frozen=True)
class FlushReport:
    """A flush: the record ids saved to the server, the files refused (name, why; each kept),
    and the server's message when it was still unreachable (the rest stay cached)."""

    saved: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    unreachable: str | None = None


def is_offline(session: Session) -> bool:
    """True once a save found the server unreachable, until a flush reaches it."""
    return session._server_offline.is_set()


def _folder(session: Session) -> Path:
    return session.vault.folder


def _meta_binding(keys: _sealing.RecordKeys, row: RecordRow) -> k.ObjectBinding:
    return k.ObjectBinding(
        keys.vault_id, row.id, META_KIND, row.id, row.version, row.clinician, row.form_id,
        row.form_version,
    )  # fmt: skip


def cache_draft(
    session: Session, record_id: str, answers: Mapping[str, Any], current_step: str | None
) -> Record:
    """Seal the draft into this computer's cache (replacing its earlier file atomically) and
    note the server unreachable. Only an own draft opened or saved in this session (or started
    offline) can be cached: its M row and object key are known without the server."""
    # Under the session's write lock: a flush running in a worker meanwhile moves the base
    # version on, and the file must be sealed against the version the server holds.
    with session._write_lock:
        return _cache_draft(session, record_id, answers, current_step)


def _cache_draft(
    session: Session, record_id: str, answers: Mapping[str, Any], current_step: str | None
) -> Record:
    keys = _sealed_records.ring(session)
    known = session._draft_rows.get(record_id)
    if known is None:
        raise ServerUnreachableError(
            f"The practice server cannot be reached, and draft {record_id} was not opened in "
            "this session, so it cannot be kept on this computer either: nothing was saved. "
            "Try again when the server is back."
        )
    row, commitment = known
    key = keys.open_object_key(_sealing.ANSWERS, record_id, commitment, [])  # in the ring
    data = _json_safe(answers)
    now = session.now_iso()
    step = current_step or row.current_step
    base = session._record_versions.get(record_id, 0)
    record = Record(
        row.id, row.clinician, "draft", row.form_id, row.form_version, data, step, None,
        row.created, now, None, _child(data), row.clinician_name,
    )  # fmt: skip
    write, _same = _sealing.seal_record(keys, record, base, key)
    wraps = _sealing._wraps(keys, _sealing.ANSWERS, record_id, key, row.clinician, now)
    meta = {"current_step": step, "created": row.created, "updated": now,
            "clinician_name": row.clinician_name}  # fmt: skip
    draft = CachedDraft(
        vault_id=keys.vault_id,
        record_id=record_id,
        author=row.clinician,
        form_id=row.form_id,
        form_version=row.form_version,
        base_version=base,
        answers_ct=write.answers.ct,
        meta_ct=k.seal_object(
            key, json.dumps(meta).encode("utf-8"), _meta_binding(keys, write.row)
        ),
        commitment=commitment,
        wraps=tuple(CachedWrap(w.recipient, w.recipient_generation, w.wrap) for w in wraps),
    )
    offline_drafts.write(_folder(session), draft)
    session._server_offline.set()
    session._draft_rows[record_id] = (replace(row, current_step=step, updated=now), commitment)
    return record


def start_offline(session: Session, form_id: str, answers: Mapping[str, Any] | None) -> Record:
    """A new draft started while the server is unreachable: its record id and object key are
    made here and it goes straight to the cache (inserted on the server at the next flush)."""
    keys = _sealed_records.ring(session)
    form = load_form_by_id(form_id)
    now = session.now_iso()
    record_id = new_record_id()
    key = k.ObjectKey.generate()
    keys.remember_object_key(_sealing.ANSWERS, record_id, key)
    row = RecordRow(
        record_id, session.user.username, "draft", form.id, form.version, form.steps[0].id, now,
        now, None, 0, session.user.full_name,
    )  # fmt: skip
    session._draft_rows[record_id] = (row, k.commitment(keys.vault_id, record_id, key))
    return cache_draft(session, record_id, dict(answers or {}), row.current_step)


def complete_refused(
    session: Session, record_id: str, answers: Mapping[str, Any] | None
) -> ServerUnreachableError:
    """The refusal of a completion while offline, after keeping `answers` (when given) in the
    cache, so the draft is as safe as the message says."""
    if answers is not None:
        cache_draft(session, record_id, answers, None)
    elif not offline_drafts.path_for(_folder(session), record_id).exists():
        return ServerUnreachableError(
            "Completing needs the practice server, which cannot be reached at the moment. "
            "Nothing was changed: the draft stays as it was last saved. Try again when the "
            "server is back."
        )
    return ServerUnreachableError(COMPLETE_OFFLINE)


# ----- opening a cache file ------------------------------------------------------------------


def _refused(path: Path, why: str) -> OfflineDraftError:
    return OfflineDraftError(
        f"The offline draft file {path.name} was not used: {why}. It has been kept where it is "
        f"({offline_drafts.FOLDER}/ in this computer's gpshare folder); tell the practice "
        "administrator."
    )


def open_file(session: Session, path: Path) -> tuple[CachedDraft, Record]:
    """A cache file opened with one of its wraps this session can open (the author's own key,
    or the lead key), checked against its commitment, the answers bound to its record, next
    version, author and form; OfflineDraftError naming the file otherwise."""
    keys = _sealed_records.ring(session)
    draft = offline_drafts.read(path)
    if draft.vault_id != keys.vault_id:
        raise _refused(path, "it belongs to another practice's vault")
    if path.name != f"{draft.record_id}{offline_drafts.SUFFIX}":
        raise _refused(path, f"its name does not match the draft it holds ({draft.record_id})")
    wraps = [(w.recipient, w.generation, w.wrap) for w in draft.wraps]
    try:
        key = keys.open_object_key(_sealing.ANSWERS, draft.record_id, draft.commitment, wraps)
    except KeyNotHeld as exc:
        raise _refused(path, "it is not sealed for your key (another user's draft)") from exc
    except KeyHierarchyError as exc:
        raise _refused(path, "it has been altered or damaged (its key does not open)") from exc
    if not hmac.compare_digest(k.commitment(keys.vault_id, draft.record_id, key), draft.commitment):
        raise _refused(path, "it has been altered (its key commitment does not match)")
    row = RecordRow(
        draft.record_id, draft.author, "draft", draft.form_id, draft.form_version, None, "", "",
        None, draft.base_version + 1,
    )  # fmt: skip
    try:
        data = json.loads(
            k.open_object(key, draft.answers_ct, _sealing._answers_binding(keys, row))
        )
        meta = json.loads(k.open_object(key, draft.meta_ct, _meta_binding(keys, row)))
    except (KeyHierarchyError, ValueError) as exc:
        raise _refused(path, "it has been altered or damaged (it does not decrypt)") from exc
    answers = data["answers"]
    record = Record(
        draft.record_id, draft.author, "draft", draft.form_id, draft.form_version, answers,
        meta["current_step"], None, meta["created"], meta["updated"], None, _child(answers),
        meta["clinician_name"],
    )  # fmt: skip
    return draft, record


# ----- flushing to the server ----------------------------------------------------------------


def _already_saved(session: Session, sealed: SealedRecord, record: Record) -> bool:
    """True when the server's draft already holds the cached answers and step (a kill between
    the server commit and the file's removal): the file can go."""
    if sealed.row.status != "draft" or sealed.answers is None:
        return False
    stored = _sealing.open_record(_sealed_records.ring(session), sealed)
    return stored.answers == record.answers and stored.current_step == record.current_step


def _flush_one(session: Session, path: Path, draft: CachedDraft, record: Record) -> bool:
    """Store one cached draft (audited) and then remove its file; False when the server
    already held it (file removed, nothing written)."""
    me = session.user.username
    with session._read() as tx:
        sealed = tx.sealed_record(draft.record_id, _sealed_records.readers(session))
    if sealed is not None and sealed.row.clinician != me:
        raise _refused(path, f"record {draft.record_id} on the server is another user's")
    if sealed is not None and sealed.row.version != draft.base_version:
        if _already_saved(session, sealed, record):
            offline_drafts.remove(path)
            return False
        if draft.is_new:
            raise _refused(path, f"a record {draft.record_id} already exists on the server")
    if sealed is not None and sealed.row.status != "draft":
        raise ValidationFailed(
            f"Record {draft.record_id} was completed since this copy was made, so it was not "
            f"saved; your copy is kept in {offline_drafts.FOLDER}/{path.name}.",
            [],
        )
    keys = _sealed_records.ring(session)
    details: dict[str, Any] = {"offline": True, "typed_at": record.updated}
    if draft.is_new:
        if sealed is not None:
            raise _refused(path, f"a record {draft.record_id} already exists on the server")
        key = keys.open_object_key(_sealing.ANSWERS, draft.record_id, draft.commitment, [])
        write, _same = _sealing.seal_record(keys, record, 0, key)
        # The wraps made offline are the server's own shape (same bindings): stored as they are.
        wraps = tuple(
            ObjectWrap(_sealing.ANSWERS, draft.record_id, w.recipient, w.generation, w.wrap,
                       record.updated)
            for w in draft.wraps
        )  # fmt: skip
        write = replace(write, answers=replace(write.answers, wraps=wraps))
        details |= {"form": record.form_id, "version": record.form_version}
        session._write(
            "record_created",
            lambda tx: tx.insert_sealed_record(write),
            draft.record_id,
            {**details, **_sealed_records.audit_details(write)},
        )
    else:
        if sealed is None:
            raise _refused(path, f"record {draft.record_id} is not on the server")
        before = session._record_versions.get(draft.record_id)
        session._record_versions[draft.record_id] = draft.base_version
        try:
            write = _sealed_records.seal_save(session, record, sealed)
            session._write(
                "draft_saved",
                lambda tx: tx.update_sealed_draft(write),
                draft.record_id,
                {"step": record.current_step, **details, **_sealed_records.audit_details(write)},
            )
        except BaseException:
            if before is None:
                session._record_versions.pop(draft.record_id, None)
            else:
                session._record_versions[draft.record_id] = before
            raise
    _sealed_records.written(session, write)
    offline_drafts.remove(path)  # only now: the server holds it
    return True


def _mine(session: Session) -> list[tuple[Path, CachedDraft | None, str | None]]:
    """This user's cache files (path, content, problem): files that say they are another
    user's are theirs to flush and are left alone; an unreadable file is listed as a problem."""
    found: list[tuple[Path, CachedDraft | None, str | None]] = []
    for path in offline_drafts.paths(_folder(session)):
        try:
            draft = offline_drafts.read(path)
        except OfflineDraftError as exc:
            found.append((path, None, str(exc)))
            continue
        if draft.author == session.user.username:
            found.append((path, draft, None))
    return found


def flush(session: Session) -> FlushReport:
    """Save every cached draft of the user through the normal path, oldest file first; stop at
    the first ServerUnreachableError (the rest stay cached). Each refusal names the file,
    which is kept."""
    report = FlushReport()
    with session._write_lock:  # the session's own saves wait: none is lost between the two
        for path, _draft, problem in _mine(session):
            if problem is not None:
                report.refused.append((path.name, problem))
                continue
            try:
                draft, record = open_file(session, path)
                if _flush_one(session, path, draft, record):
                    report.saved.append(draft.record_id)
            except ServerUnreachableError as exc:
                return replace(report, unreachable=str(exc))
            except OfflineDraftError as exc:
                report.refused.append((path.name, str(exc)))
            except (StaleVersionError, ValidationFailed, NotFound, ServiceError) as exc:
                report.refused.append(
                    (path.name, f"{exc} Your offline copy is kept in "
                                f"{offline_drafts.FOLDER}/{path.name}.")
                )  # fmt: skip
        session._server_offline.clear()
    return report


def waiting(session: Session) -> list[WaitingDraft]:
    """The user's drafts in this computer's cache, each opened to name the child."""
    found = []
    for path, draft, problem in _mine(session):
        if draft is None:
            found.append(WaitingDraft(path.stem, path.name, "", "", False, problem))
            continue
        try:
            _draft, record = open_file(session, path)
        except OfflineDraftError as exc:
            found.append(WaitingDraft(draft.record_id, path.name, "", "", draft.is_new, str(exc)))
            continue
        found.append(
            WaitingDraft(
                record.id, path.name, record.child.display_name, record.updated, draft.is_new
            )
        )
    return found


def sign_in_notices(session: Session) -> list[str]:
    """At sign-in: flush the user's cached drafts and say what happened (nothing when the
    cache holds none of theirs)."""
    if session.keys is None or not _mine(session):
        return []
    report = flush(session)
    lines = []
    if report.saved:
        lines.append(
            f"{len(report.saved)} draft(s) typed while the practice server was unreachable "
            f"have now been saved to it: {', '.join(report.saved)}."
        )
    for name, why in report.refused:
        lines.append(f"A draft kept on this computer ({name}) was not saved: {why}")
    if report.unreachable:
        lines.append(f"Drafts are still waiting on this computer: {report.unreachable}")
    return lines
