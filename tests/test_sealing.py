"""The record codec (gpshare/services/_sealing.py) through the real SQLCipher store, with a real
key ring (generated X25519 keys, clinical keys of two generations, HPKE wraps): round trips of
every object kind, blind-token lookups and their confirmation, moved ciphertexts and swapped
wraps refused, a stale save refused, and no plaintext anywhere in records.db or its WAL."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gpshare.clock import FixedClock
from gpshare.errors import KeyNotHeld, StaleVersionError
from gpshare.records import ChildSummary, FollowUp, Record, Review, User
from gpshare.services import _sealing as sealing
from gpshare.services.record_keys import LEAD_RECIPIENT, Recipient
from gpshare.store import keys, open_store
from gpshare.store.crypto import CHEAP_TEST_KDF
from gpshare.store.port import AuditEntry, RecordRow, RecordWrite, Store
from gpshare.store.sqlcipher.engine import SqlcipherStore
from gpshare.store.vault import Vault

WHEN = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
CREATED = WHEN.isoformat(timespec="seconds")
# Words that must never appear in records.db outside a ciphertext.
ELLIE = {
    "given": "Ellie",
    "family": "Marsh",
    "nhs": "943 476 5870",
    "dob": "2024-03-14",
    "carer": "Kayleigh Marsh",
    "address": "14 Canal Row, Leeds",
    "postcode": "LS11 5AB",
}
OTHER = {
    "given": "Tomasz",
    "family": "Quillfeather",
    "nhs": "401 023 2137",
    "dob": "2019-07-01",
    "carer": "Wiktoria Quillfeather",
    "address": "3 Heron Close, Bradford",
    "postcode": "BD7 1DP",
}
NARRATIVE = "Zanzibarquux bruising seen on both upper arms"


class Ring:
    """A real RecordKeys: one user's X25519 key (and the lead key for a lead), the live
    clinical generations, and the verified public keys of everyone wrapped for."""

    def __init__(
        self,
        practice: Practice,
        user: str,
        generations: Sequence[int],
        *,
        lead: bool = False,
    ) -> None:
        self._practice = practice
        self.user = user
        self._clinical = [practice.clinical[g] for g in generations]
        self._private: dict[tuple[str, int], X25519PrivateKey] = {(user, 1): practice.users[user]}
        if lead:
            self._private[(LEAD_RECIPIENT, 1)] = practice.lead_key
        self.opened: list[tuple[str, str]] = []

    @property
    def vault_id(self) -> str:
        return self._practice.vault_id

    @property
    def reads_as(self) -> list[str]:
        """The recipient ids whose wraps this session asks the store for."""
        return [rid for rid, _generation in self._private]

    def clinical(self) -> keys.ClinicalKey:
        if not self._clinical:
            raise KeyNotHeld("no clinical key in this session")
        return max(self._clinical, key=lambda c: c.generation)

    def clinical_generations(self) -> Sequence[keys.ClinicalKey]:
        return list(self._clinical)

    def recipients(self, author: str) -> Sequence[Recipient]:
        ids = list(dict.fromkeys([self.user, author]))
        found = [Recipient(i, 1, self._practice.users[i].public_key()) for i in ids]
        return [*found, Recipient(LEAD_RECIPIENT, 1, self._practice.lead_key.public_key())]

    def open_object_key(
        self,
        object_kind: str,
        object_id: str,
        commitment: bytes,
        wraps: Sequence[tuple[str, int, bytes]],
    ) -> keys.ObjectKey:
        for recipient, generation, wrap in wraps:
            private = self._private.get((recipient, generation))
            if private is None:
                continue
            binding = keys.WrapBinding.for_object(
                self.vault_id, object_kind, object_id, recipient, generation
            )
            self.opened.append((object_kind, object_id))
            return keys.unwrap_object_key(wrap, private, binding, commitment)
        raise KeyNotHeld(f"no wrap of {object_kind} {object_id} for {self.user}")


@dataclasses.dataclass
class Practice:
    store: Store
    vault: Vault
    vault_id: str
    users: dict[str, X25519PrivateKey]
    lead_key: X25519PrivateKey
    clinical: dict[int, keys.ClinicalKey]

    def ring(self, user: str, generations: Sequence[int] = (1,), lead: bool = False) -> Ring:
        return Ring(self, user, generations, lead=lead)

    @property
    def connection(self) -> Any:
        assert isinstance(self.store, SqlcipherStore)
        return self.store.connection


@pytest.fixture
def practice(tmp_path: Path) -> Iterator[Practice]:
    clock = FixedClock(WHEN)
    vault, key, _secret, _recovery = Vault.create(
        tmp_path / "vault", practice_name="Sealing Test Practice", admin_username="admin",
        admin_password="admin-password-1", clock=clock, kdf=CHEAP_TEST_KDF,
    )  # fmt: skip
    store = open_store(vault, key, clock, create=True)
    store.apply_migrations()
    with store.write(AuditEntry("admin", "users_added")) as tx:
        for username, role in (
            ("drsmith", "clinician"),
            ("drjones", "clinician"),
            ("drlead", "lead"),
        ):
            tx.insert_user(User(username, f"Dr {username[2:].title()}", role, None, True, False, CREATED))  # fmt: skip
    users = {name: X25519PrivateKey.generate() for name in ("drsmith", "drjones", "drlead")}
    clinical = {g: keys.ClinicalKey.generate_generation(g) for g in (1, 2)}
    try:
        yield Practice(store, vault, vault.vault_id, users, X25519PrivateKey.generate(), clinical)
    finally:
        store.close()
        vault.lock.release()


def _answers(child: dict[str, str], **more: Any) -> dict[str, Any]:
    return {
        "nhs_number": child["nhs"],
        "child_given_name": child["given"],
        "child_family_name": child["family"],
        "date_of_birth": child["dob"],
        "address": child["address"],
        "postcode": child["postcode"],
        "parents_carers": [{"name": child["carer"], "relationship": "mother"}],
        "concern_narrative": NARRATIVE,
        "categories": ["physical"],
        "decision": "refer_csc",
        **more,
    }


def _record(rid: str, child: dict[str, str], clinician: str = "drsmith", **more: Any) -> Record:
    return Record(
        rid, clinician, "draft", "england-child-safeguarding", 2, _answers(child, **more), "child",
        None, CREATED, CREATED, None,
        ChildSummary(child["given"], child["family"], child["nhs"].replace(" ", ""), child["dob"]),
        f"Dr {clinician[2:].title()}",
    )  # fmt: skip


OUTCOME = {
    "pathway": "referral",
    "consent_basis": "consent_given",
    "letter_required": True,
    "prompts": ["Xylophonic prompt about timing"],
    "letter_title": "Referral",
    "snomed_codes": [{"code": "836881000000105", "term": "Referral"}],
}


def _write(store: Store, action: str, record_id: str, work: Any) -> None:
    # Audit details carry ids only: no identity, no narrative.
    with store.write(AuditEntry("drsmith", action, record_id=record_id)) as tx:
        work(tx)


def _save_completed(
    practice: Practice, ring: Ring, rid: str, child: dict[str, str]
) -> tuple[Record, keys.ObjectKey]:
    """A record inserted as a draft, saved once more and completed (versions 1, 2, 3)."""
    draft = _record(rid, child)
    first, key = sealing.seal_record(ring, draft, 0)
    _write(practice.store, "record_created", rid, lambda tx: tx.insert_sealed_record(first))
    edited = dataclasses.replace(draft, answers={**draft.answers, "child_words": "Quokkaphrase"})
    second, same = sealing.seal_record(ring, edited, 1, key)
    assert same is key and second.answers.wraps == ()  # re-saved under its existing key
    _write(practice.store, "draft_saved", rid, lambda tx: tx.update_sealed_draft(second))
    done = dataclasses.replace(
        edited, status="completed", completed=CREATED, outcome=dict(OUTCOME), current_step=None
    )
    third, _ = sealing.seal_record(ring, done, 2, key)
    _write(practice.store, "record_completed", rid, lambda tx: tx.complete_sealed_record(third))
    return done, key


def _open(practice: Practice, ring: Ring, rid: str) -> Record:
    with practice.store.read() as tx:
        sealed = tx.sealed_record(rid, ring.reads_as)
    assert sealed is not None
    return sealing.open_record(ring, sealed)


# ----- round trips ------------------------------------------------------------------------


def test_a_record_round_trips_through_draft_saves_and_completion(practice: Practice) -> None:
    smith = practice.ring("drsmith")
    done, _key = _save_completed(practice, smith, "SG-AAAA-0001", ELLIE)
    assert _open(practice, smith, "SG-AAAA-0001") == done
    # The lead opens it through the lead key's wrap; a colleague has no wrap to open.
    assert _open(practice, practice.ring("drlead", lead=True), "SG-AAAA-0001") == done
    with pytest.raises(KeyNotHeld):
        _open(practice, practice.ring("drjones"), "SG-AAAA-0001")
    with practice.store.read() as tx:
        sealed = tx.sealed_record("SG-AAAA-0001", ["drsmith", LEAD_RECIPIENT])
        [stored] = tx.summaries(["SG-AAAA-0001", "SG-NONE-0000"])
    assert sealed is not None and sealed.answers is not None
    assert (sealed.row.version, sealed.row.status) == (3, "completed")
    # One key for the record's whole life: wrapped once, for writer and lead.
    assert sorted(w.recipient for w in sealed.answers.wraps) == sorted(["drsmith", LEAD_RECIPIENT])
    summary = sealing.open_summary(smith, stored)
    assert (summary.child, summary.pathway, summary.consent_basis) == (
        done.child, "referral", "consent_given"
    )  # fmt: skip
    assert (summary.decision, summary.categories, summary.author) == (
        "refer_csc", ("physical",), "drsmith"
    )  # fmt: skip
    assert summary.identity.carers == (("Kayleigh", "Marsh"),)
    assert (summary.identity.postcode, summary.identity.house_number) == ("LS11 5AB", "14")


def test_a_stale_save_is_refused_and_writes_nothing(practice: Practice) -> None:
    smith = practice.ring("drsmith")
    draft = _record("SG-AAAA-0002", ELLIE)
    first, key = sealing.seal_record(smith, draft, 0)
    _write(practice.store, "record_created", draft.id, lambda tx: tx.insert_sealed_record(first))
    mine = dataclasses.replace(draft, answers={**draft.answers, "child_words": "window one"})
    theirs = dataclasses.replace(draft, answers={**draft.answers, "child_words": "window two"})
    ours, _ = sealing.seal_record(smith, mine, 1, key)
    late, _ = sealing.seal_record(smith, theirs, 1, key)  # opened at the same version
    _write(practice.store, "draft_saved", draft.id, lambda tx: tx.update_sealed_draft(ours))
    head = practice.store.last_head
    with pytest.raises(StaleVersionError, match=r"saved elsewhere meanwhile \(it is at version 2"):
        _write(practice.store, "draft_saved", draft.id, lambda tx: tx.update_sealed_draft(late))
    assert practice.store.last_head == head  # no audit event either
    assert _open(practice, smith, draft.id).answers["child_words"] == "window one"
    done = dataclasses.replace(mine, status="completed", completed=CREATED, outcome=dict(OUTCOME))
    final, _ = sealing.seal_record(smith, done, 2, key)
    _write(practice.store, "record_completed", draft.id, lambda tx: tx.complete_sealed_record(final))  # fmt: skip
    again, _ = sealing.seal_record(smith, mine, 3, key)
    with pytest.raises(StaleVersionError, match="has been completed since it was opened"):
        _write(practice.store, "draft_saved", draft.id, lambda tx: tx.update_sealed_draft(again))


def test_every_object_kind_round_trips(practice: Practice) -> None:
    smith, lead = practice.ring("drsmith"), practice.ring("drlead", lead=True)
    _save_completed(practice, smith, "SG-AAAA-0003", ELLIE)
    _save_completed(practice, smith, "SG-AAAA-0004", OTHER)
    with practice.store.read() as tx:
        sealed = tx.sealed_record("SG-AAAA-0003", [])
    assert sealed is not None
    row = sealed.row
    addendum = sealing.seal_addendum(smith, row, CREATED, "Pelicanwhistle seen again")
    signed, unsigned = sealing.seal_letter(smith, row, CREATED, b"%PDF signed", b"%PDF plain")
    fu = FollowUp(0, row.id, "sent", CREATED, "drsmith", CREATED, "accepted",
                  "Marmalade phoned", {"via": "secure email"})  # fmt: skip
    note = sealing.seal_followup_note(smith, row, fu)
    bare = FollowUp(0, row.id, "acknowledged", CREATED, "drsmith", CREATED, None, None, {})
    assert sealing.seal_followup_note(smith, row, bare) is None
    review = Review(0, row.id, "drlead", CREATED, "needs_discussion", "Gooseberry comment", "learn")
    review_body = sealing.seal_review(lead, row, review)  # wrapped for the lead and the author
    generation, household = sealing.seal_household_review(
        lead, row.id, "SG-AAAA-0004", "same_household", "Saxophone note"
    )
    with practice.store.write(AuditEntry("drlead", "objects_added", record_id=row.id)) as tx:
        addendum_id = tx.add_sealed_addendum(row.id, "drsmith", CREATED, addendum)
        letter_id = tx.add_sealed_letter(row.id, CREATED, "drsmith", "ab" * 32, signed, unsigned)
        fu_id = tx.add_sealed_followup(fu, note)
        bare_id = tx.add_sealed_followup(bare, None)
        review_id = tx.add_sealed_review(row.id, "drlead", CREATED, review_body)
        tx.add_sealed_household_review(row.id, "SG-AAAA-0004", "drlead", CREATED, generation, household)  # fmt: skip
    for ring in (smith, lead):
        with practice.store.read() as tx:
            [a] = tx.sealed_addenda(row.id, ring.reads_as)
            [letter] = tx.sealed_letters(row.id, ring.reads_as)
            events = tx.sealed_followups([row.id], ring.reads_as)
            [r] = tx.sealed_reviews(row.id, ring.reads_as)
            [h] = tx.household_reviews([row.id])
            meta = tx.letter_by_hash("ab" * 32)
        got = sealing.open_addendum(ring, row, a)
        assert (got.id, got.author, got.body) == (
            addendum_id,
            "drsmith",
            "Pelicanwhistle seen again",
        )
        assert sealing.open_letter(ring, row, letter) == (meta, b"%PDF signed", b"%PDF plain")
        assert letter.meta.id == letter_id
        assert [sealing.open_followup(ring, row, e) for e in events] == [
            dataclasses.replace(fu, id=fu_id), dataclasses.replace(bare, id=bare_id)
        ]  # fmt: skip
        assert sealing.open_review(ring, row, r) == dataclasses.replace(review, id=review_id)
        assert sealing.open_household_review(ring, h) == ("same_household", "Saxophone note")
    # A household review moved to another pair of records does not open.
    with pytest.raises(keys.EnvelopeError):
        sealing.open_household_review(lead, dataclasses.replace(h, other_record_id="SG-AAAA-0003"))
    # The v1 readers do not hand out sealed rows as if they were plaintext ones.
    with practice.store.read() as tx:
        assert tx.addenda(row.id) == [] and tx.reviews(row.id) == []
        assert tx.household_link_decisions([row.id]) == {}
    with pytest.raises(KeyNotHeld):  # a colleague holds no wrap of any of them
        sealing.open_addendum(practice.ring("drjones"), row, a)


# ----- blind indexes ----------------------------------------------------------------------


def _lookup(practice: Practice, ring: Ring, identity: keys.IndexedIdentity) -> dict[str, bool]:
    """{record id: confirmed} for every record the identity's tokens find."""
    with practice.store.read() as tx:
        matches = tx.records_for_tokens(sealing.lookup_tokens(ring, identity), None)
    return {m.row.id: sealing.confirm_match(ring, m) is not None for m in matches}


def test_a_child_is_found_by_each_blind_index_under_two_live_generations(
    practice: Practice,
) -> None:
    before = practice.ring("drsmith", (1,))
    _save_completed(practice, before, "SG-GEN1-0001", ELLIE)
    # After a rotation: new records use generation 2, lookups compute both.
    after = practice.ring("drsmith", (1, 2))
    typed_again = {**ELLIE, "given": "ELLIE", "family": " marsh ", "postcode": "ls115ab"}
    _save_completed(practice, after, "SG-GEN2-0001", typed_again)
    _save_completed(practice, after, "SG-GEN2-0002", OTHER)
    both = {"SG-GEN1-0001": True, "SG-GEN2-0001": True}
    queries = {
        "nhs": keys.IndexedIdentity(nhs="9434765870"),
        "family|dob": keys.IndexedIdentity(family="Marsh", dob="2024-03-14"),
        "given|dob": keys.IndexedIdentity(given="Ellie", dob="2024-03-14"),
        "carer": keys.IndexedIdentity(carers=(("Kayleigh", "MARSH"),)),
        "postcode|house": keys.IndexedIdentity(postcode="LS11 5AB", house_number="14"),
    }
    for what, identity in queries.items():
        assert _lookup(practice, after, identity) == both, what
    # A session holding only generation 1 finds only what was indexed under it.
    assert _lookup(practice, before, queries["nhs"]) == {"SG-GEN1-0001": True}
    assert _lookup(practice, after, keys.IndexedIdentity(nhs="4010232137")) == {"SG-GEN2-0002": True}  # fmt: skip
    with practice.store.read() as tx:
        tokens = sealing.lookup_tokens(after, queries["nhs"])
        assert [m.row.id for m in tx.records_for_tokens(tokens, "SG-GEN1-0001")] == ["SG-GEN2-0001"]
        assert [r.id for r in tx.records_without_tokens(2)] == ["SG-GEN1-0001"]
    # Indexing the older record under generation 2 (what a rotation's catch-up does).
    tokens = sealing.record_tokens(after, _answers(ELLIE))
    with practice.store.write(AuditEntry("lead", "tokens_added")) as tx:
        tx.put_blind_tokens("SG-GEN1-0001", 2, tokens)
    with practice.store.read() as tx:
        assert tx.records_without_tokens(2) == []
    only_new = sealing.lookup_tokens(practice.ring("drsmith", (2,)), queries["carer"])
    with practice.store.read() as tx:
        matches = tx.records_for_tokens(only_new, None)
    # Found by generation 2 tokens alone, confirmed with the generation that made each token.
    assert {m.row.id: m.found_by.generation for m in matches} == {"SG-GEN1-0001": 2, "SG-GEN2-0001": 2}  # fmt: skip
    assert all(sealing.confirm_match(after, m) is not None for m in matches)


def test_confirm_match_rejects_a_token_moved_to_another_record(practice: Practice) -> None:
    ring = practice.ring("drsmith")
    _save_completed(practice, ring, "SG-MOVE-0001", ELLIE)
    _save_completed(practice, ring, "SG-MOVE-0002", OTHER)
    conn = practice.connection
    # An insider copies Ellie's NHS-number token onto the other child's record.
    conn.execute(
        "INSERT INTO blind_index (generation, type, token, record_id) "
        "SELECT generation, type, token, 'SG-MOVE-0002' FROM blind_index "
        "WHERE record_id = 'SG-MOVE-0001' AND type = 'nhs'"
    )
    found = _lookup(practice, ring, keys.IndexedIdentity(nhs="9434765870"))
    assert found == {"SG-MOVE-0001": True, "SG-MOVE-0002": False}


def test_identity_comes_from_the_answers_where_the_form_keeps_it() -> None:
    identity = sealing.identity_of(
        {
            "child_given_name": " Siân ", "child_family_name": "O'Brien-Nuñez",
            "date_of_birth": "2020-02-29", "nhs_number": "943 476 5870",
            "address": "Flat B, 27a Mill Lane\nLeeds LS6 2QT",
            "parents_carers": [{"name": "Mary Ann Smith"}, {"name": "Cher"}, {"name": " "}],
        }
    )  # fmt: skip
    assert (identity.given, identity.family, identity.dob) == (
        "Siân",
        "O'Brien-Nuñez",
        "2020-02-29",
    )
    assert identity.carers == (("Mary Ann", "Smith"), ("", "Cher"))
    assert (identity.postcode, identity.house_number) == ("LS6 2QT", "27a")
    named = sealing.identity_of({"address": "Rose Cottage, Mill Lane, Otley", "postcode": "LS21 1AA"})  # fmt: skip
    assert (named.postcode, named.house_number) == ("LS21 1AA", "Rose Cottage")


# ----- tampering -------------------------------------------------------------------------


def _draft(practice: Practice, ring: Ring, rid: str, child: dict[str, str]) -> RecordWrite:
    write, _key = sealing.seal_record(ring, _record(rid, child), 0)
    _write(practice.store, "record_created", rid, lambda tx: tx.insert_sealed_record(write))
    return write


def test_moved_ciphertexts_fail_their_binding(practice: Practice) -> None:
    ring = practice.ring("drsmith")
    one = _draft(practice, ring, "SG-TAMP-0001", ELLIE)
    two = _draft(practice, ring, "SG-TAMP-0002", OTHER)
    conn = practice.connection

    def refused(rid: str) -> None:
        with pytest.raises(keys.EnvelopeError):
            _open(practice, ring, rid)

    # Answers of another record.
    conn.execute("UPDATE records SET answers_ct = ? WHERE id = ?", (two.answers.ct, one.row.id))
    refused(one.row.id)
    conn.execute("UPDATE records SET answers_ct = ? WHERE id = ?", (one.answers.ct, one.row.id))
    assert _open(practice, ring, one.row.id).answers["child_given_name"] == "Ellie"
    # Summary of another record; then the record's own summary of an older version.
    conn.execute("UPDATE record_summaries SET ct = ? WHERE record_id = ?", (two.summary.ct, one.row.id))  # fmt: skip
    refused(one.row.id)
    conn.execute("UPDATE record_summaries SET ct = ? WHERE record_id = ?", (one.summary.ct, one.row.id))  # fmt: skip
    # A second save under the record's own key (the answers' commitment never changes).
    wraps = [(w.recipient, w.recipient_generation, w.wrap) for w in one.answers.wraps]
    key = ring.open_object_key("answers", one.row.id, one.answers.commitment, wraps)
    second, _ = sealing.seal_record(ring, _record(one.row.id, ELLIE, child_words="newer"), 1, key)
    _write(practice.store, "draft_saved", one.row.id, lambda tx: tx.update_sealed_draft(second))
    assert _open(practice, ring, one.row.id).answers["child_words"] == "newer"
    conn.execute("UPDATE record_summaries SET ct = ? WHERE record_id = ?", (one.summary.ct, one.row.id))  # fmt: skip
    refused(one.row.id)  # version 1's summary under version 2's row
    conn.execute("UPDATE record_summaries SET ct = ? WHERE record_id = ?", (second.summary.ct, one.row.id))  # fmt: skip
    conn.execute("UPDATE records SET answers_ct = ? WHERE id = ?", (one.answers.ct, one.row.id))
    refused(one.row.id)  # version 1's answers under version 2's row


def _row(practice: Practice, rid: str) -> RecordRow:
    with practice.store.read() as tx:
        sealed = tx.sealed_record(rid, [])
    assert sealed is not None
    return sealed.row


def test_an_addendum_moved_to_another_object_or_record_fails(practice: Practice) -> None:
    ring = practice.ring("drsmith")
    _save_completed(practice, ring, "SG-ADDM-0001", ELLIE)
    _save_completed(practice, ring, "SG-ADDM-0002", OTHER)
    one, two = (_row(practice, rid) for rid in ("SG-ADDM-0001", "SG-ADDM-0002"))
    with practice.store.write(AuditEntry("drsmith", "addenda_added")) as tx:
        tx.add_sealed_addendum(one.id, "drsmith", CREATED, sealing.seal_addendum(ring, one, CREATED, "first"))  # fmt: skip
        tx.add_sealed_addendum(one.id, "drsmith", CREATED, sealing.seal_addendum(ring, one, CREATED, "second"))  # fmt: skip
    conn = practice.connection
    # An insider with the practice key can drop the append-only trigger; the binding still holds.
    conn.execute("DROP TRIGGER addenda_append_only")
    conn.execute(
        "UPDATE addenda SET body_ct = (SELECT body_ct FROM addenda ORDER BY id LIMIT 1) "
        "WHERE id = (SELECT max(id) FROM addenda)"
    )
    with practice.store.read() as tx:
        first, moved = tx.sealed_addenda(one.id, ring.reads_as)
    assert sealing.open_addendum(ring, one, first).body == "first"
    with pytest.raises(keys.EnvelopeError):
        sealing.open_addendum(ring, one, moved)
    conn.execute("UPDATE addenda SET record_id = ? WHERE id = ?", (two.id, first.id))
    with practice.store.read() as tx:
        [elsewhere] = tx.sealed_addenda(two.id, ring.reads_as)
    with pytest.raises(keys.EnvelopeError):
        sealing.open_addendum(ring, two, elsewhere)


def test_a_swapped_wrap_fails_to_unwrap_or_its_commitment(practice: Practice) -> None:
    ring = practice.ring("drsmith")
    one = _draft(practice, ring, "SG-WRAP-0001", ELLIE)
    two = _draft(practice, ring, "SG-WRAP-0002", OTHER)
    conn = practice.connection
    conn.execute("DROP TRIGGER object_wraps_append_only")
    swap = "UPDATE object_wraps SET wrap = ? WHERE object_id = ? AND recipient = 'drsmith'"
    # Another record's wrap: made for another object id, so it does not open here.
    conn.execute(swap, (two.answers.wraps[0].wrap, one.row.id))
    with pytest.raises(keys.UnwrapError):
        _open(practice, ring, one.row.id)
    # A valid wrap, for this very binding, of another key: caught by the commitment.
    binding = keys.WrapBinding.for_object(practice.vault_id, "answers", one.row.id, "drsmith", 1)
    other_key = keys.wrap_key(keys.ObjectKey.generate(), practice.users["drsmith"].public_key(), binding)  # fmt: skip
    conn.execute(swap, (other_key, one.row.id))
    with pytest.raises(keys.CommitmentError):
        _open(practice, ring, one.row.id)


# ----- nothing in the clear --------------------------------------------------------------

MARKERS = [
    "Ellie", "Marsh", "Kayleigh", "Canal Row", "LS11 5AB", "LS115AB", "9434765870",
    "943 476 5870", "2024-03-14", "Tomasz", "Quillfeather", "BD7 1DP", "4010232137",
    "Zanzibarquux", "Quokkaphrase", "Xylophonic", "Pelicanwhistle", "Marmalade",
    "Gooseberry", "Saxophone", "physical", "refer_csc", "consent_given", "%PDF",
]  # fmt: skip


def test_a_raw_dump_of_records_db_and_its_wal_holds_no_identity_or_narrative(
    practice: Practice,
) -> None:
    smith, lead = practice.ring("drsmith"), practice.ring("drlead", lead=True)
    _save_completed(practice, smith, "SG-DUMP-0001", ELLIE)
    _save_completed(practice, smith, "SG-DUMP-0002", OTHER)
    with practice.store.read() as tx:
        sealed = tx.sealed_record("SG-DUMP-0001", [])
    assert sealed is not None
    row = sealed.row
    fu = FollowUp(0, row.id, "sent", CREATED, "drsmith", CREATED, None, "Marmalade", {"by": "Marsh"})  # fmt: skip
    review = Review(0, row.id, "drlead", CREATED, "reasonable", "Gooseberry", None)
    signed, unsigned = sealing.seal_letter(smith, row, CREATED, b"%PDF Ellie", b"%PDF Marsh")
    generation, household = sealing.seal_household_review(lead, row.id, "SG-DUMP-0002", "same_household", "Saxophone")  # fmt: skip
    with practice.store.write(AuditEntry("drsmith", "objects_added", record_id=row.id)) as tx:
        tx.add_sealed_addendum(row.id, "drsmith", CREATED, sealing.seal_addendum(smith, row, CREATED, "Pelicanwhistle Ellie"))  # fmt: skip
        tx.add_sealed_letter(row.id, CREATED, "drsmith", "cd" * 32, signed, unsigned)
        tx.add_sealed_followup(fu, sealing.seal_followup_note(smith, row, fu))
        tx.add_sealed_review(row.id, "drlead", CREATED, sealing.seal_review(lead, row, review))
        tx.add_sealed_household_review(row.id, "SG-DUMP-0002", "drlead", CREATED, generation, household)  # fmt: skip
    conn = practice.connection
    found: list[str] = []
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert {"records", "record_summaries", "blind_index", "addenda", "letters"} <= set(tables)
    for table in tables:
        for values in conn.execute(f'SELECT * FROM "{table}"'):
            for value in values:
                if isinstance(value, bytes | str):
                    blob = value.encode() if isinstance(value, str) else value
                    found += [
                        f"{table}: {m}" for m in MARKERS if m.lower().encode() in blob.lower()
                    ]
    assert found == []
    # The WAL (and the main file) hold only SQLCipher pages: no marker in their raw bytes.
    wal = Path(f"{practice.vault.db_path}-wal")
    assert wal.stat().st_size > 0
    for path in (wal, practice.vault.db_path):
        raw = path.read_bytes().lower()
        assert [m for m in MARKERS if m.lower().encode() in raw] == [], path.name
    # And yet every object opens for its readers (the scan saw real ciphertexts).
    assert _open(practice, smith, row.id).answers["concern_narrative"] == NARRATIVE


def test_deleting_a_sealed_draft_removes_its_summary_and_tokens(practice: Practice) -> None:
    ring = practice.ring("drsmith")
    draft = _draft(practice, ring, "SG-GONE-0001", ELLIE)
    _save_completed(practice, ring, "SG-KEEP-0001", ELLIE)
    with practice.store.write(AuditEntry("drsmith", "draft_deleted")) as tx:
        tx.delete_draft(draft.row.id)
        tx.delete_draft("SG-KEEP-0001")  # a completed record is not a draft: kept whole
    with practice.store.read() as tx:
        assert tx.sealed_record(draft.row.id, ring.reads_as) is None
        assert [s.record_id for s in tx.summaries([draft.row.id, "SG-KEEP-0001"])] == ["SG-KEEP-0001"]  # fmt: skip
    conn = practice.connection
    left = conn.execute("SELECT DISTINCT record_id FROM blind_index").fetchall()
    assert left == [("SG-KEEP-0001",)]


def test_a_record_summary_binding_is_unchanged_by_the_new_kind_field() -> None:
    # Summaries sealed before SummaryBinding had a kind must still open: same AAD bytes.
    binding = keys.SummaryBinding("vault-1", "SG-AAAA-0001", 3)
    legacy = keys.encode("gpshare/v2/summary", "vault-1", "SG-AAAA-0001", "summary", 2, 3)
    assert binding.aad(2) == legacy
    household = keys.SummaryBinding("vault-1", "SG-AAAA-0001", 0, "household-review", "SG-B")
    assert household.aad(2) != keys.SummaryBinding("vault-1", "SG-AAAA-0001", 0, "household-review", "SG-C").aad(2)  # fmt: skip
