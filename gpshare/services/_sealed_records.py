"""Records on a vault-version-2 vault (docs/vault-v2.md §1.2, §1.3; DESIGN §10.1): the
services' side of the record codec (gpshare/services/_sealing.py) for assessments, record
views, lists and earlier records of the same child.

Only used when `session.keys is not None`. What each read opens:
- one record (`readable`, `own_draft`): its M row, C summary and, after the access check, its
  answers object (one object-key unwrap, cached in the key ring until lock);
- lists (`list_page`, `count`): M rows and one page of C summaries, never an unwrap — except
  the drafts of an author who held no clinical key when saving them, which have no summary:
  their own list opens their answers (they hold the object key) to show the child's name;
- earlier records of a child (`same_child`): blind tokens under every live generation, each
  match confirmed against its decrypted summary.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from gpshare.chronology import ChronologyEntry, HouseholdLink, build_chronology, normalise_name
from gpshare.errors import KeyNotHeld, NotFound, ValidationFailed
from gpshare.filters import RecordFilter
from gpshare.records import Addendum, ChildSummary, FollowUp, Record, Review
from gpshare.services import _sealing
from gpshare.services.keyring import SessionKeys
from gpshare.services.record_keys import LEAD_RECIPIENT
from gpshare.store import keys as k
from gpshare.store import sealed_rows
from gpshare.store.port import (
    ObjectWrap,
    ReadTx,
    RecordRow,
    RecordWrite,
    SealedRecord,
    TokenMatch,
)

if TYPE_CHECKING:
    from gpshare.services.session import Session

# Record filters on class C fields: the engine cannot apply them to sealed rows (the columns
# are empty), so they are applied here on decrypted summaries.
C_FILTERS = ("pathway", "consent_basis", "child_nhs", "search")
# Blind-token types that identify the child (the others find the household: carers, address).
CHILD_TOKENS = ("nhs", "family|dob", "given|dob")
COMPLETE_NEEDS_KEY = (
    "A safeguarding lead must confirm your key (File › My key words) before you can complete: "
    "completion checks this child's earlier records."
)


def ring(session: Session) -> SessionKeys:
    """The session's key ring (only called on a v2 vault)."""
    assert session.keys is not None
    return session.keys


def readers(session: Session) -> list[str]:
    """Recipient ids whose wraps a read asks for: the user's own, and the lead key's (opened
    only when the session holds the lead key)."""
    return [session.user.username, LEAD_RECIPIENT]


def _sealed(session: Session, tx: ReadTx, record_id: str) -> SealedRecord:
    found = tx.sealed_record(record_id, readers(session))
    if found is None:
        raise NotFound(
            f"No record called {record_id}. Check the reference (it looks like SG-XXXX-XXXX)."
        )
    return found


def readable(session: Session, record_id: str, action: str) -> tuple[Record, SealedRecord]:
    """The record opened if the acting user may read it (its author, or a lead), else audit
    and refuse before anything is unwrapped."""
    with session._read() as tx:
        sealed = _sealed(session, tx, record_id)
    if session.user.role != "lead" and sealed.row.clinician != session.user.username:
        raise session._deny(
            action, record_id, "Not permitted for your role: you can only open your own records."
        )
    record = _sealing.open_record(ring(session), sealed)
    session._record_versions[record_id] = sealed.row.version
    remember_draft(session, sealed)
    return record, sealed


def own_draft(session: Session, record_id: str, action: str) -> tuple[Record, SealedRecord]:
    """The acting user's own draft opened, else audit and refuse (or say it is completed)."""
    with session._read() as tx:
        found = tx.sealed_record(record_id, readers(session))
    if found is None:
        raise NotFound(f"No record {record_id}.")
    if found.row.clinician != session.user.username:
        raise session._deny(
            action, record_id, "Not permitted: you can only change your own drafts."
        )
    if found.row.status != "draft":
        raise ValidationFailed(
            f"Record {record_id} is completed and cannot be changed; add an addendum instead.",
            [],
        )
    opened = _sealing.open_record(ring(session), found)
    remember_draft(session, found)
    return opened, found


def remember_draft(session: Session, sealed: SealedRecord | RecordWrite) -> None:
    """Keep an own draft's M row and answers commitment, opened or just saved: enough to seal
    its next save into the offline cache if the server is then unreachable (its object key is
    in the key ring already)."""
    row = sealed.row
    if row.clinician != session.user.username:
        return
    if row.status == "draft" and sealed.answers is not None:
        session._draft_rows[row.id] = (row, sealed.answers.commitment)
    else:
        session._draft_rows.pop(row.id, None)  # completed: never cached offline


def base_version(session: Session, sealed: SealedRecord) -> int:
    """The version this session last opened or saved the record at (optimistic locking: a
    save from it fails if another window or workstation saved meanwhile); the stored version
    when this session never opened it (a command-line save)."""
    return session._record_versions.get(sealed.row.id, sealed.row.version)


def seal_save(session: Session, record: Record, sealed: SealedRecord | None) -> RecordWrite:
    """The sealed write of `record` (new when `sealed` is None): the answers object keeps the
    key made at insert (cached in the key ring); recipients verified since the last save (the
    lead, once the author's key is confirmed) get their wrap now."""
    keys = ring(session)
    if sealed is None:
        write, key = _sealing.seal_record(keys, record, 0)
        keys.remember_object_key(_sealing.ANSWERS, record.id, key)
        return write
    answers = sealed.answers
    assert answers is not None
    key = keys.open_object_key(
        answers.kind,
        answers.object_id,
        answers.commitment,
        [(w.recipient, w.recipient_generation, w.wrap) for w in answers.wraps],
    )
    write, _same = _sealing.seal_record(keys, record, base_version(session, sealed), key)
    have = {(w.recipient, w.recipient_generation) for w in answers.wraps}
    missing = [r for r in keys.recipients(record.clinician) if (r.id, r.generation) not in have]
    if missing:
        made = []
        for recipient in missing:
            binding = k.WrapBinding.for_object(
                keys.vault_id, answers.kind, answers.object_id, recipient.id, recipient.generation
            )
            wrap = k.wrap_key(key, recipient.public_key, binding)
            made.append(
                ObjectWrap(
                    answers.kind, answers.object_id, recipient.id, recipient.generation, wrap,
                    record.updated,
                )
            )  # fmt: skip
        write = replace(write, answers=replace(write.answers, wraps=tuple(made)))
    return write


def written(session: Session, write: RecordWrite) -> None:
    """Note the version a write of this session stored (after its transaction committed)."""
    session._record_versions[write.row.id] = write.row.version
    remember_draft(session, write)


def audit_details(write: RecordWrite) -> dict[str, Any]:
    """What a sealed write's audit event carries (DESIGN §10.3, gpshare/store/sealed_rows.py):
    the record row it wrote, at its new version, with the SHA-256 of the answers and summary
    ciphertexts and the answers object-key commitment."""
    cts = {"answers_ct": write.answers.ct}
    if write.summary is not None:
        cts[sealed_rows.SUMMARY_COLUMN] = write.summary.ct
    wraps = (f"{w.recipient}@{w.recipient_generation}" for w in write.answers.wraps)
    entry = sealed_rows.row_entry(
        sealed_rows.RECORDS,
        write.row.id,
        write.row.version,
        cts,
        {"answers_ct": write.answers.commitment},
        wraps,
    )
    return sealed_rows.sealed_details(entry)


def require_clinical_key(session: Session) -> None:
    """Refuse completion to an author who holds no clinical key yet (unconfirmed)."""
    try:
        ring(session).clinical()
    except KeyNotHeld as exc:
        raise KeyNotHeld(COMPLETE_NEEDS_KEY) from exc


# ----- lists ---------------------------------------------------------------------------------


def _listed(row: Record, summary: _sealing.RecordSummary | None) -> Record:
    """A light record (M row) with what its C summary says: the child, decision, review date
    and (completed) pathway, consent basis and SNOMED codes — the same shape v1 lists carry."""
    if summary is None:
        return row
    outcome = None
    if row.status == "completed" and summary.outcome is not None:
        outcome = {
            **summary.outcome,
            "letter_required": summary.pathway not in (None, "monitor"),
        }
    return replace(
        row,
        child=summary.child,
        answers={
            "review_date": summary.review_date,
            "decision": summary.decision,
            "categories": list(summary.categories),  # the chronology names the concern
        },
        outcome=outcome,
    )


def record_of(row: RecordRow, summary: _sealing.RecordSummary) -> Record:
    """A light record (no answers: chronology, lists) from an M row and its C summary."""
    light = Record(
        row.id, row.clinician, row.status, row.form_id, row.form_version, {}, row.current_step,
        None, row.created, row.updated, row.completed, ChildSummary("", "", None, None),
        row.clinician_name,
    )  # fmt: skip
    return _listed(light, summary)


def with_summaries(session: Session, tx: ReadTx, rows: Sequence[Record]) -> list[Record]:
    """Rows of one page with their summaries decrypted (one query, no unwrap). A draft with no
    summary (written before its author held a clinical key) is opened from its answers when it
    is the acting user's own: they hold its object key."""
    keys = ring(session)
    stored = {s.record_id: s for s in tx.summaries([r.id for r in rows])}
    found = []
    for row in rows:
        summary = stored.get(row.id)
        if summary is not None:
            try:
                opened = _sealing.open_summary(keys, summary)
            except KeyNotHeld:
                opened = None  # a generation this session does not hold: the row shows no name
            found.append(_listed(row, opened))
        elif row.is_draft and row.clinician == session.user.username:
            sealed = tx.sealed_record(row.id, readers(session))
            child = (
                _sealing.open_record(keys, sealed).child
                if sealed is not None and sealed.answers is not None
                else ChildSummary("", "", None, None)
            )
            found.append(replace(row, child=child))
        else:
            found.append(row)
    return found


def child_names(session: Session, record_ids: Sequence[str]) -> dict[str, str]:
    """The child's display name of each of these records, from their summaries (one query, no
    unwrap); a record whose summary this session cannot open is left out."""
    keys = ring(session)
    with session._read() as tx:
        stored = tx.summaries(record_ids)
    names = {}
    for summary in stored:
        try:
            names[summary.record_id] = _sealing.open_summary(keys, summary).child.display_name
        except KeyNotHeld:
            continue
    return names


def c_filtered(flt: RecordFilter) -> bool:
    """True when `flt` filters on a class C field (applied here, not by the engine)."""
    return any(getattr(flt, name) for name in C_FILTERS)


def _matches(record: Record, flt: RecordFilter) -> bool:
    if flt.pathway and record.pathway != flt.pathway:
        return False
    if flt.consent_basis and (record.outcome or {}).get("consent_basis") != flt.consent_basis:
        return False
    if flt.child_nhs and record.child.nhs_number != flt.child_nhs:
        return False
    if flt.search:
        # Words of the child's names, NHS number and the record id, each matched as a prefix
        # (as the v1 full-text search matched its words): the lead's search while the replica
        # is being rebuilt. Narratives are searched in the replica (gpshare/services/
        # search_index.py), and by clinicians in memory.
        child = record.child
        words = f"{child.given_name} {child.family_name} {child.nhs_number or ''} {record.id}"
        have = words.casefold().split()
        for wanted in flt.search.casefold().split():
            if not any(w.startswith(wanted) for w in have):
                return False
    return True


def list_page(
    session: Session,
    flt: RecordFilter,
    limit: int | None,
    offset: int,
    search: Callable[[Sequence[Record]], set[str]] | None = None,
) -> list[Record]:
    """A page of records (newest change first) with their summaries, without the lead's
    replica. Filters on M columns run in the engine; C filters run here on every M match's
    decrypted summary. Search: `search(rows)` gives the ids that match (a clinician's own
    records, searched in memory, narratives included); without it, names, NHS number and
    reference only (a lead whose replica is not ready)."""
    engine_flt = replace(flt, **{name: None for name in C_FILTERS})
    with session._read() as tx:
        if not c_filtered(flt):
            rows = tx.list_records(engine_flt, limit, offset, light=True)
            return with_summaries(session, tx, rows)
        rows = tx.list_records(engine_flt, None, 0, light=True)
        listed = with_summaries(session, tx, rows)
    if search is not None and flt.search:
        keep = search(listed)
        plain = replace(flt, search=None)
        matching = [r for r in listed if r.id in keep and _matches(r, plain)]
    else:
        matching = [r for r in listed if _matches(r, flt)]
    return matching[offset : None if limit is None else offset + limit]


def rows_in_order(session: Session, record_ids: Sequence[str]) -> list[Record]:
    """The listed records of these ids, in this order, from their M rows and C summaries (the
    page the lead's replica selected: what is shown is read from the vault, never the replica)."""
    if not record_ids:
        return []
    with session._read() as tx:
        rows = tx.list_records(RecordFilter(record_ids=tuple(record_ids)), None, 0, light=True)
        found = {r.id: r for r in with_summaries(session, tx, rows)}
    return [found[rid] for rid in record_ids if rid in found]


def count(
    session: Session,
    flt: RecordFilter,
    search: Callable[[Sequence[Record]], set[str]] | None = None,
) -> int:
    """How many records `flt` selects (C filters applied on decrypted summaries)."""
    if not c_filtered(flt):
        with session._read() as tx:
            return tx.count_records(flt)
    return len(list_page(session, flt, None, 0, search))


def monthly_counts(
    session: Session, date_from: str | None, date_to: str | None
) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, int]]]:
    """The dashboard's (month, pathway, count) and (month, consent basis, count) rows on a v2
    vault, where pathway and consent basis are class C: counted over the decrypted summaries
    of the completed records in range, as the engine's dashboard_rows counts them on v1 (month
    of completion, 'unknown' when absent). Correct, not fast, until the lead replica
    (vault-v2 step 6, services half) serves the dashboard."""
    records = list_page(
        session, RecordFilter(status="completed", date_from=date_from, date_to=date_to), None, 0
    )
    by_pathway: Counter[tuple[str, str]] = Counter()
    by_consent: Counter[tuple[str, str]] = Counter()
    for record in records:
        month = (record.completed or "")[:7]
        outcome = record.outcome or {}
        by_pathway[(month, str(outcome.get("pathway") or "unknown"))] += 1
        by_consent[(month, str(outcome.get("consent_basis") or "unknown"))] += 1
    return (
        sorted((m, k, n) for (m, k), n in by_pathway.items()),
        sorted((m, k, n) for (m, k), n in by_consent.items()),
    )


# ----- earlier records of the same child -------------------------------------------------------


def same_child(
    session: Session, answers: Mapping[str, Any], exclude: str | None
) -> list[tuple[TokenMatch, _sealing.RecordSummary, str]]:
    """Completed records about the same child as `answers`, oldest first: (match, confirmed
    summary, "nhs" or "probable"). Found by the child's blind tokens under every live clinical
    generation (none held: none found), each confirmed against its summary. As on v1, a
    different NHS number on both sides is a different child."""
    keys = ring(session)
    identity = _sealing.identity_of(answers)
    tokens = [t for t in _sealing.lookup_tokens(keys, identity) if t.type in CHILD_TOKENS]
    if not tokens:
        return []
    with session._read() as tx:
        matches = tx.records_for_tokens(tokens, exclude)
    ours = identity.nhs
    found = []
    for match in matches:
        summary = _sealing.confirm_match(keys, match)
        if summary is None:
            continue
        theirs = summary.child.nhs_number
        # The store keeps one token per match (whichever it met first), so the NHS number is
        # compared on the confirmed summary: the same number is an NHS match however found.
        same_nhs = bool(ours and theirs and _digits(ours) == _digits(theirs))
        if not same_nhs and ours and theirs:
            continue  # a different NHS number on both sides: a different child
        how = "nhs" if same_nhs else "probable"
        found.append((match, summary, how))
    return found


def household(
    session: Session, summaries: Sequence[_sealing.RecordSummary], exclude: Sequence[str]
) -> list[HouseholdLink]:
    """Records about other children sharing a carer (family|given) or the address
    (postcode|house) with any of `summaries` (the child's own records), each confirmed against
    its summary; the reasons come from the confirmed summaries' blind-index values."""
    keys = ring(session)
    tokens = []
    for summary in summaries:
        household_only = replace(summary.identity, given="", family="", dob=None, nhs=None)
        tokens += [
            t for t in _sealing.lookup_tokens(keys, household_only) if t.type not in CHILD_TOKENS
        ]
    if not tokens:
        return []
    with session._read() as tx:
        matches = tx.records_for_tokens(tokens, None)
    carers = {_carer(c) for s in summaries for c in s.identity.carers}
    addresses = {_address(s.identity) for s in summaries} - {("", "")}
    children = {_child_key(s) for s in summaries}
    found = []
    for match in matches:
        if match.row.id in exclude:
            continue
        other = _sealing.confirm_match(keys, match)
        if other is None or _child_key(other) in children:
            continue
        reasons = []
        if carers & {_carer(c) for c in other.identity.carers}:
            reasons.append("same parent/carer")
        if _address(other.identity) in addresses:
            reasons.append("same address")
        if reasons:
            found.append(HouseholdLink(record_of(match.row, other), tuple(reasons)))
    return found


def _carer(carer: tuple[str, str]) -> tuple[str, str]:
    return (normalise_name(carer[0]), normalise_name(carer[1]))


def _address(identity: k.IndexedIdentity) -> tuple[str, str]:
    return (normalise_name(identity.postcode), normalise_name(identity.house_number))


def _child_key(summary: _sealing.RecordSummary) -> str:
    child = summary.child
    return child.nhs_number or normalise_name(child.display_name)


def _digits(nhs: str) -> str:
    return "".join(ch for ch in nhs if ch.isdigit())


def chronology(
    session: Session, record: Record
) -> tuple[list[ChronologyEntry], list[HouseholdLink], int]:
    """The lead's chronology of `record`'s child on a v2 vault: (entries, household links,
    records of the child). Records of the child come from blind tokens; follow-up, review and
    addendum *events* from M rows (their text is N, read only when a record is opened)."""
    keys = ring(session)
    matches = same_child(session, record.answers, record.id)
    same = [record] + [record_of(m.row, summary) for m, summary, _how in matches]
    ids = [r.id for r in same]
    who = readers(session)
    with session._read() as tx:
        own = {s.record_id: s for s in tx.summaries([record.id])}
        sealed_followups = tx.sealed_followups(ids, who)
        # A sealed event with neither note nor details is also a v1-shaped row: list it once.
        sealed_ids = {f.id for f in sealed_followups}
        followups = [f for f in tx.followups(ids) if f.id not in sealed_ids] + [
            FollowUp(
                f.id, f.record_id, f.event, f.at, f.recorded_by, f.recorded_at, f.decision, None
            )
            for f in sealed_followups
        ]
        reviews = [rv for i in ids for rv in tx.reviews(i)] + [
            Review(r.id, r.record_id, r.reviewer, r.created, "", None, None)
            for i in ids
            for r in tx.sealed_reviews(i, who)
        ]
        addenda = [a for i in ids for a in tx.addenda(i)] + [
            Addendum(a.id, a.record_id, a.author, a.created, "")
            for i in ids
            for a in tx.sealed_addenda(i, who)
        ]
        decided = tx.household_link_decisions(ids)
        sealed_reviews = tx.household_reviews(ids)
    for review in sealed_reviews:  # oldest first: the newest decision on a pair stands
        decided[review.other_record_id] = _sealing.open_household_review(keys, review)[0]
    summaries = [s for _m, s, _how in matches]
    if record.id in own:
        summaries.insert(0, _sealing.open_summary(keys, own[record.id]))
    entries = build_chronology(same, followups, reviews, addenda)
    links = [
        replace(link, status=decided.get(link.record.id, "to_confirm"))
        for link in household(session, summaries, ids)
    ]
    return entries, links, len(same)
