"""The key hierarchy primitives of DESIGN §10.1 (gpshare.store.keys): every row of the binding
table round-trips, and refuses a ciphertext, wrap, MAC or directory entry that was moved to
another record, recipient, purpose, generation or vault, or altered."""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gpshare.store import keys
from gpshare.store.crypto import CHEAP_TEST_KDF
from gpshare.store.keys import blind, directory, envelopes
from gpshare.store.keys.binding import Label, decode_bytes, derive, encode
from gpshare.store.keys.pgp_words import EVEN_WORDS, ODD_WORDS

VAULT = "3f1c1e1a-6a1b-4bd0-9a43-0d7f2c1b9e10"
OTHER_VAULT = "9d0f0b4e-2c39-4a57-8a4b-51e7f3f0c2aa"
VALID_NHS = "943 476 5919"
BAD_CHECK_DIGIT_NHS = "943 476 5918"


def raw(key: X25519PrivateKey | Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def flip(blob: bytes, position: int) -> bytes:
    changed = bytearray(blob)
    changed[position] ^= 0x01
    return bytes(changed)


# ---- canonical encoding -------------------------------------------------------------------


def test_encoding_is_length_prefixed_and_typed() -> None:
    assert encode("ab", "c") != encode("a", "bc")
    assert encode("1") != encode(1) != encode(b"1")
    assert encode("x", b"") != encode("x")
    assert encode("Siân") == encode("Siân")


def test_bytes_fields_decode_back_and_malformed_input_is_refused() -> None:
    blob = encode(b"one", b"", b"three")
    assert decode_bytes(blob, 3, "test blob") == [b"one", b"", b"three"]
    for bad, count, problem in [
        (blob, 2, "3 fields, expected 2"),
        (blob[:-1], 3, "truncated"),
        (encode("text"), 1, "expected format"),
    ]:
        with pytest.raises(keys.CiphertextFormatError, match=problem):
            decode_bytes(bad, count, "test blob")


@pytest.mark.parametrize("bad", [True, 1.5, None])
def test_encoding_refuses_ambiguous_fields(bad: object) -> None:
    with pytest.raises(TypeError):
        encode("field", bad)  # type: ignore[arg-type]


# ---- HKDF derivation ----------------------------------------------------------------------


def test_each_label_and_vault_gives_its_own_key() -> None:
    practice = keys.PracticeKey.generate()
    derived = {
        (label, vault): derive(practice, label, vault).reveal()
        for label in (Label.SQLCIPHER, Label.M_ROW, Label.AUDIT)
        for vault in (VAULT, OTHER_VAULT)
    }
    assert len(set(derived.values())) == 6
    assert practice.reveal() not in derived.values()  # the SQLCipher key is not the root
    assert derive(practice, Label.M_ROW, VAULT).reveal() == derived[(Label.M_ROW, VAULT)]


@pytest.mark.parametrize(
    "root, label",
    [
        (keys.PracticeKey(bytes(32)), Label.SUMMARY),
        (keys.PracticeKey(bytes(32)), Label.USER_KEK),
        (keys.ClinicalKey(bytes(32), 1), Label.M_ROW),
        (keys.ClinicalKey(bytes(32), 1), Label.SQLCIPHER),
        (keys.ObjectKey(bytes(32)), Label.AUDIT),
        (keys.PasswordRoot(bytes(32)), Label.SUMMARY),
    ],
)
def test_a_root_derives_only_its_own_labels(root: keys.binding.Secret, label: Label) -> None:
    with pytest.raises(keys.KeyUsageError, match=label.value):
        derive(root, label, VAULT)


def test_a_clinical_key_always_has_a_generation() -> None:
    with pytest.raises(keys.KeyUsageError, match="generation"):
        keys.ClinicalKey.generate()
    with pytest.raises(keys.KeyUsageError, match="generation"):
        keys.ClinicalKey(bytes(32), 0)


def test_a_derived_key_serves_one_purpose() -> None:
    clinical = keys.ClinicalKey.generate_generation(1)
    summary_key = derive(clinical, Label.SUMMARY, VAULT)
    assert summary_key.require(Label.SUMMARY) == summary_key.reveal()
    with pytest.raises(keys.KeyUsageError, match="summary"):
        summary_key.require(Label.BIDX_NHS)


# ---- HPKE wraps and commitments -----------------------------------------------------------


@pytest.fixture
def recipient() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def object_binding(**changes: object) -> keys.WrapBinding:
    binding = keys.WrapBinding.for_object(VAULT, "answers", "obj-17", "drpatel", 2)
    return dataclasses.replace(binding, **changes)  # type: ignore[arg-type]


def test_object_key_wrap_round_trips_and_checks_its_commitment(
    recipient: X25519PrivateKey,
) -> None:
    key = keys.ObjectKey.generate()
    stored = keys.commitment(VAULT, "obj-17", key)
    wrap = keys.wrap_key(key, recipient.public_key(), object_binding())
    opened = keys.unwrap_object_key(wrap, recipient, object_binding(), stored)
    assert opened.reveal() == key.reveal()
    assert wrap[:2] == bytes([0x02, 0x02])  # format byte, HPKE suite id
    assert int.from_bytes(wrap[2:6], "big") == 2  # recipient key generation


@pytest.mark.parametrize(
    "moved",
    [
        {"subject_id": "obj-18"},  # another object (record)
        {"subject_kind": "addendum"},
        {"recipient_id": "drowen"},
        {"purpose": keys.WrapPurpose.CLINICAL_KEY},
        {"vault_id": OTHER_VAULT},
    ],
    ids=["object", "kind", "recipient", "purpose", "vault"],
)
def test_a_moved_wrap_does_not_open(recipient: X25519PrivateKey, moved: dict[str, object]) -> None:
    wrap = keys.wrap_key(keys.ObjectKey.generate(), recipient.public_key(), object_binding())
    with pytest.raises(keys.UnwrapError, match="does not open"):
        keys.unwrap_key(wrap, recipient, object_binding(**moved))


def test_a_wrap_for_another_generation_does_not_open(recipient: X25519PrivateKey) -> None:
    wrap = keys.wrap_key(keys.ObjectKey.generate(), recipient.public_key(), object_binding())
    with pytest.raises(keys.UnwrapError, match="generation 2"):
        keys.unwrap_key(wrap, recipient, object_binding(recipient_generation=3))
    # Rewriting the generation in the header does not help: it is bound into `info`.
    forged = wrap[:5] + bytes([3]) + wrap[6:]
    with pytest.raises(keys.UnwrapError):
        keys.unwrap_key(forged, recipient, object_binding(recipient_generation=3))


def test_a_wrap_for_someone_else_does_not_open(recipient: X25519PrivateKey) -> None:
    wrap = keys.wrap_key(keys.ObjectKey.generate(), recipient.public_key(), object_binding())
    with pytest.raises(keys.UnwrapError):
        keys.unwrap_key(wrap, X25519PrivateKey.generate(), object_binding())


def test_a_tampered_wrap_does_not_open(recipient: X25519PrivateKey) -> None:
    wrap = keys.wrap_key(keys.ObjectKey.generate(), recipient.public_key(), object_binding())
    with pytest.raises(keys.CiphertextFormatError):
        keys.unwrap_key(flip(wrap, 0), recipient, object_binding())  # format byte
    with pytest.raises(keys.CiphertextFormatError):
        keys.unwrap_key(wrap[:3], recipient, object_binding())
    for position in (6, 6 + 32, len(wrap) - 1):  # encapsulated key, body, tag
        with pytest.raises(keys.UnwrapError):
            keys.unwrap_key(flip(wrap, position), recipient, object_binding())


def test_a_wrong_commitment_is_refused(recipient: X25519PrivateKey) -> None:
    key = keys.ObjectKey.generate()
    wrap = keys.wrap_key(key, recipient.public_key(), object_binding())
    with pytest.raises(keys.CommitmentError, match="commitment"):
        keys.unwrap_object_key(
            wrap, recipient, object_binding(), flip(keys.commitment(VAULT, "obj-17", key), 0)
        )
    # A commitment to a different key (an attacker's wrap of their own key) is refused too.
    other = keys.ObjectKey.generate()
    with pytest.raises(keys.CommitmentError):
        keys.unwrap_object_key(
            keys.wrap_key(other, recipient.public_key(), object_binding()),
            recipient,
            object_binding(),
            keys.commitment(VAULT, "obj-17", key),
        )


def test_commitment_binds_vault_and_object() -> None:
    key = keys.ObjectKey.generate()
    base = keys.commitment(VAULT, "obj-17", key)
    assert keys.commitment(OTHER_VAULT, "obj-17", key) != base
    assert keys.commitment(VAULT, "obj-18", key) != base
    assert len(base) == 32


def test_role_key_wraps_are_bound_to_purpose_and_generation(recipient: X25519PrivateKey) -> None:
    clinical = keys.ClinicalKey.generate_generation(4)
    binding = keys.WrapBinding.for_role_key(keys.WrapPurpose.CLINICAL_KEY, VAULT, 4, "lead", 1)
    wrap = keys.wrap_key(clinical, recipient.public_key(), binding)
    assert keys.unwrap_key(wrap, recipient, binding) == clinical.reveal()
    as_lead_key = keys.WrapBinding.for_role_key(keys.WrapPurpose.LEAD_KEY, VAULT, 4, "lead", 1)
    older = keys.WrapBinding.for_role_key(keys.WrapPurpose.CLINICAL_KEY, VAULT, 3, "lead", 1)
    for wrong in (as_lead_key, older):
        with pytest.raises(keys.UnwrapError):
            keys.unwrap_key(wrap, recipient, wrong)
    with pytest.raises(keys.KeyUsageError):
        keys.unwrap_object_key(wrap, recipient, binding, b"")
    with pytest.raises(keys.KeyUsageError):
        keys.WrapBinding.for_role_key(keys.WrapPurpose.OBJECT_KEY, VAULT, 1, "lead", 1)


# ---- N objects ----------------------------------------------------------------------------

OBJECT = keys.ObjectBinding(VAULT, "rec-5", "answers", "obj-17", 3, "drpatel", "gp-concern", 2)


def test_an_object_round_trips_with_a_fresh_nonce() -> None:
    key = keys.ObjectKey.generate()
    first = keys.seal_object(key, b'{"concern": "bruising"}', OBJECT)
    second = keys.seal_object(key, b'{"concern": "bruising"}', OBJECT)
    assert first != second and first[6:18] != second[6:18]
    assert keys.open_object(key, first, OBJECT) == b'{"concern": "bruising"}'
    assert first[:6] == bytes([0x02, 0x01, 0, 0, 0, 0])  # format, AES-GCM suite, generation 0
    assert b"bruising" not in first


@pytest.mark.parametrize(
    "field, value",
    [
        ("vault_id", OTHER_VAULT),
        ("record_id", "rec-6"),
        ("object_kind", "addendum"),
        ("object_id", "obj-18"),
        ("version", 4),
        ("author_id", "drowen"),
        ("form_id", "gp-concern-v1"),
        ("form_version", 1),
    ],
)
def test_a_moved_object_does_not_open(field: str, value: object) -> None:
    key = keys.ObjectKey.generate()
    blob = keys.seal_object(key, b"narrative", OBJECT)
    with pytest.raises(keys.EnvelopeError, match="does not open"):
        keys.open_object(key, blob, dataclasses.replace(OBJECT, **{field: value}))


def test_a_tampered_object_does_not_open() -> None:
    key = keys.ObjectKey.generate()
    blob = keys.seal_object(key, b"narrative", OBJECT)
    for position in (5, 6, 20, len(blob) - 1):  # generation, nonce, body, tag
        with pytest.raises(keys.EnvelopeError):
            keys.open_object(key, flip(blob, position), OBJECT)
    with pytest.raises(keys.CiphertextFormatError, match="suite"):
        keys.open_object(key, flip(blob, 1), OBJECT)
    with pytest.raises(keys.EnvelopeError):
        keys.open_object(keys.ObjectKey.generate(), blob, OBJECT)


# ---- C summaries --------------------------------------------------------------------------


def test_a_summary_opens_only_under_its_generation_and_row() -> None:
    g1, g2 = keys.ClinicalKey.generate_generation(1), keys.ClinicalKey.generate_generation(2)
    row = keys.SummaryBinding(VAULT, "rec-5", 1)
    blob = keys.seal_summary(g2, b"2026-11-30 neglect referral", row)
    assert envelopes.summary_generation(blob) == 2
    assert keys.open_summary(g2, blob, row) == b"2026-11-30 neglect referral"
    with pytest.raises(keys.EnvelopeError, match="generation 2"):
        keys.open_summary(g1, blob, row)
    # Same key bytes but labelled generation 1: the AAD binds the generation.
    with pytest.raises(keys.EnvelopeError):
        keys.open_summary(keys.ClinicalKey(g2.reveal(), 1), blob[:5] + b"\x01" + blob[6:], row)
    for moved in (
        keys.SummaryBinding(VAULT, "rec-6", 1),
        keys.SummaryBinding(VAULT, "rec-5", 2),
        keys.SummaryBinding(OTHER_VAULT, "rec-5", 1),
    ):
        with pytest.raises(keys.EnvelopeError):
            keys.open_summary(g2, blob, moved)


def test_summary_key_is_not_an_object_key() -> None:
    # A summary sealed under the clinical key does not open as an N object under the same bytes.
    clinical = keys.ClinicalKey.generate_generation(1)
    blob = keys.seal_summary(clinical, b"summary", keys.SummaryBinding(VAULT, "rec-5", 1))
    with pytest.raises(keys.EnvelopeError):
        keys.open_object(keys.ObjectKey(clinical.reveal()), blob, OBJECT)


# ---- M row MAC ----------------------------------------------------------------------------

ROW = {"status": "completed", "form_id": "gp-concern", "form_version": 2, "completed_at": None}


def test_row_mac_verifies_and_catches_every_change() -> None:
    practice = keys.PracticeKey.generate()
    where = keys.RowBinding(VAULT, "records", "rec-5", 3)
    mac = keys.row_mac(practice, where, ROW)
    keys.verify_row_mac(practice, where, dict(reversed(ROW.items())), mac)  # column order is free
    changed_rows = [{**ROW, "status": "draft"}, {**ROW, "completed_at": ""}, {**ROW, "extra": 1}]
    for row in changed_rows:
        with pytest.raises(keys.RowMacError, match="changed outside gpshare"):
            keys.verify_row_mac(practice, where, row, mac)
    moved = [
        dataclasses.replace(where, row_id="rec-6"),
        dataclasses.replace(where, version=4),
        dataclasses.replace(where, table="addenda"),
        dataclasses.replace(where, vault_id=OTHER_VAULT),
    ]
    for other in moved:
        with pytest.raises(keys.RowMacError, match="changed outside gpshare"):
            keys.verify_row_mac(practice, other, ROW, mac)
    with pytest.raises(keys.RowMacError):
        keys.verify_row_mac(keys.PracticeKey.generate(), where, ROW, mac)


# ---- blind indexes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed, normal",
    [
        ("Siân", "sian"),
        ("O'Brien-Nuñez", "obriennunez"),
        ("  ZOË  ", "zoe"),
        ("Strauß", "strauss"),
        ("Ødegård", "degard"),  # Ø has no decomposition: it is dropped, not guessed
        ("María-José", "mariajose"),
    ],
)
def test_name_normalisation(typed: str, normal: str) -> None:
    assert blind.normalise_name(typed) == normal


def test_sian_and_sian_give_the_same_tokens() -> None:
    clinical = keys.ClinicalKey.generate_generation(1)
    a = blind.IndexedIdentity("Siân", "O'Brien-Nuñez", "2019-04-02", VALID_NHS)
    b = blind.IndexedIdentity("SIAN", "obrien nunez", "2019-04-02", "9434765919")
    assert keys.record_tokens(clinical, VAULT, a) == keys.record_tokens(clinical, VAULT, b)


def test_token_set_per_record() -> None:
    identity = blind.IndexedIdentity(
        "Amira",
        "Khan",
        "2018-01-31",
        VALID_NHS,
        carers=(("Sara", "Khan"), ("Omar", "Haddad")),
        postcode="B1 1AA",
        house_number="12a",
    )
    values = keys.index_values(identity)
    assert values == [
        (keys.IndexType.NHS, ("9434765919",)),
        (keys.IndexType.FAMILY_DOB, ("khan", "2018-01-31")),
        (keys.IndexType.GIVEN_DOB, ("amira", "2018-01-31")),
        (keys.IndexType.FAMILY_GIVEN, ("khan", "sara")),
        (keys.IndexType.FAMILY_GIVEN, ("haddad", "omar")),
        (keys.IndexType.POSTCODE_HOUSE, ("b11aa", "12a")),
    ]
    tokens = keys.record_tokens(keys.ClinicalKey.generate_generation(3), VAULT, identity)
    assert len({t.token for t in tokens}) == 6
    assert all(len(t.token) == 16 and t.generation == 3 for t in tokens)


def test_an_nhs_number_with_a_bad_check_digit_gives_no_token() -> None:
    identity = blind.IndexedIdentity("Amira", "Khan", "2018-01-31", BAD_CHECK_DIGIT_NHS)
    types = [t for t, _ in keys.index_values(identity)]
    assert keys.IndexType.NHS not in types
    assert types == [keys.IndexType.FAMILY_DOB, keys.IndexType.GIVEN_DOB]


def test_missing_or_impossible_dob_gives_no_dob_tokens() -> None:
    for dob in (None, "2019-02-30", "31/01/2018"):
        identity = blind.IndexedIdentity("Amira", "Khan", dob, VALID_NHS)
        assert [t for t, _ in keys.index_values(identity)] == [keys.IndexType.NHS]


def test_tokens_differ_by_type_generation_and_vault() -> None:
    g1, g2 = keys.ClinicalKey.generate_generation(1), keys.ClinicalKey.generate_generation(2)
    same_parts = ("khan", "2018-01-31")
    by_type = {
        blind.blind_index(g1, VAULT, t, same_parts).token
        for t in (keys.IndexType.FAMILY_DOB, keys.IndexType.GIVEN_DOB)
    }
    assert len(by_type) == 2
    family_dob = keys.IndexType.FAMILY_DOB
    assert blind.blind_index(g1, VAULT, family_dob, same_parts) != blind.blind_index(
        g2, VAULT, family_dob, same_parts
    )
    assert blind.blind_index(g1, VAULT, family_dob, same_parts) != blind.blind_index(
        g1, OTHER_VAULT, family_dob, same_parts
    )


def test_lookup_covers_every_live_generation() -> None:
    g1, g2 = keys.ClinicalKey.generate_generation(1), keys.ClinicalKey.generate_generation(2)
    identity = blind.IndexedIdentity("Amira", "Khan", "2018-01-31", VALID_NHS)
    stored_under_g1 = keys.record_tokens(g1, VAULT, identity)
    lookups = keys.lookup_tokens([g1, g2], VAULT, identity)
    assert {t.generation for t in lookups} == {1, 2}
    assert all(
        any(blind.same_token(s.token, lookup.token) for lookup in lookups) for s in stored_under_g1
    )


def test_a_probable_match_is_confirmed_from_the_decrypted_identity() -> None:
    g1 = keys.ClinicalKey.generate_generation(1)
    stored = blind.IndexedIdentity("Siân", "Jones", "2019-04-02", VALID_NHS)
    by_nhs = keys.record_tokens(g1, VAULT, stored)[0]
    assert keys.confirms(g1, VAULT, stored, by_nhs)
    # A different child (another NHS number) whose summary came back for that token is not a match.
    other = blind.IndexedIdentity("Siân", "Jones", "2019-04-02", "401 023 2137")
    assert not keys.confirms(g1, VAULT, other, by_nhs)
    # A token of another generation is not confirmed under this one.
    g2 = keys.ClinicalKey.generate_generation(2)
    assert not keys.confirms(g2, VAULT, stored, by_nhs)


# ---- user key bundles ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def lead_signing() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_bundle_round_trips_with_its_pin(lead_signing: Ed25519PrivateKey) -> None:
    user = keys.UserKeys.generate(raw(lead_signing))
    sealed = keys.seal_bundle(user, "correct horse", VAULT, "drpatel", 1, CHEAP_TEST_KDF)
    opened = keys.open_bundle(sealed, "correct horse", VAULT, "drpatel")
    assert raw(opened.encryption) == raw(user.encryption)
    assert raw(opened.audit) == raw(user.audit)
    assert opened.pinned_lead_signing_key == raw(lead_signing)
    assert sealed.blob[:2] == bytes([0x02, 0x01])


def test_bundle_refuses_wrong_password_user_vault_or_generation() -> None:
    user = keys.UserKeys.generate()
    sealed = keys.seal_bundle(user, "correct horse", VAULT, "drpatel", 2, CHEAP_TEST_KDF)
    attempts: list[Callable[[], object]] = [
        lambda: keys.open_bundle(sealed, "wrong horse", VAULT, "drpatel"),
        lambda: keys.open_bundle(sealed, "correct horse", VAULT, "drowen"),
        lambda: keys.open_bundle(sealed, "correct horse", OTHER_VAULT, "drpatel"),
        lambda: keys.open_bundle(
            dataclasses.replace(sealed, generation=1), "correct horse", VAULT, "drpatel"
        ),
        lambda: keys.open_bundle(
            dataclasses.replace(sealed, blob=flip(sealed.blob, len(sealed.blob) - 1)),
            "correct horse",
            VAULT,
            "drpatel",
        ),
        lambda: keys.open_bundle(
            dataclasses.replace(sealed, kdf=dataclasses.replace(CHEAP_TEST_KDF, iterations=2)),
            "correct horse",
            VAULT,
            "drpatel",
        ),
    ]
    for attempt in attempts:
        with pytest.raises(keys.BundleError, match="drpatel|drowen"):
            attempt()


def test_bundle_with_an_enrolment_secret_needs_it() -> None:
    user = keys.UserKeys.generate()
    secret = b"\x07" * 32
    sealed = keys.seal_bundle(
        user, "pw", VAULT, "drpatel", 1, CHEAP_TEST_KDF, enrolment_secret=secret
    )
    assert raw(
        keys.open_bundle(sealed, "pw", VAULT, "drpatel", enrolment_secret=secret).encryption
    ) == raw(user.encryption)
    for wrong in (None, b"\x08" * 32):
        with pytest.raises(keys.BundleError):
            keys.open_bundle(sealed, "pw", VAULT, "drpatel", enrolment_secret=wrong)


# ---- the signed key directory -------------------------------------------------------------


def user_entry(user: keys.UserKeys, **changes: object) -> keys.UserEntry:
    entry = keys.UserEntry(VAULT, "drpatel", "clinician", raw(user.encryption), 1, True)
    return dataclasses.replace(entry, **changes)  # type: ignore[arg-type]


def test_a_signed_entry_gives_the_recipient_key(lead_signing: Ed25519PrivateKey) -> None:
    user = keys.UserKeys.generate()
    signed = keys.sign_entry(user_entry(user), lead_signing)
    public, generation = keys.verified_recipient_key(signed, raw(lead_signing), VAULT, "drpatel")
    assert generation == 1
    # A wrap made for the verified key opens with the user's private key.
    binding = keys.WrapBinding.for_object(VAULT, "answers", "obj-1", "drpatel", generation)
    key = keys.ObjectKey.generate()
    wrap = keys.wrap_key(key, public, binding)
    assert keys.unwrap_key(wrap, user.encryption, binding) == key.reveal()


def test_an_entry_signed_by_another_key_is_refused(lead_signing: Ed25519PrivateKey) -> None:
    user = keys.UserKeys.generate()
    forged = keys.sign_entry(user_entry(user), Ed25519PrivateKey.generate())
    with pytest.raises(
        keys.DirectoryAlteredError, match="the practice's key directory has been altered"
    ):
        keys.verified_recipient_key(forged, raw(lead_signing), VAULT, "drpatel")


@pytest.mark.parametrize(
    "edit",
    [
        {"public_key": bytes(range(32))},  # a swapped user key
        {"role": "lead"},
        {"key_generation": 2},
        {"active": False},
        {"user_id": "drowen"},
    ],
    ids=["swapped-key", "role", "generation", "active", "user"],
)
def test_an_entry_edited_after_signing_is_refused(
    lead_signing: Ed25519PrivateKey, edit: dict[str, object]
) -> None:
    user = keys.UserKeys.generate()
    signed = keys.sign_entry(user_entry(user), lead_signing)
    edited = keys.SignedEntry(dataclasses.replace(signed.entry, **edit), signed.signature)  # type: ignore[arg-type]
    with pytest.raises(keys.DirectoryAlteredError, match="has been altered"):
        keys.verify_entry(edited, raw(lead_signing), VAULT)


def test_unsigned_other_vault_disabled_or_foreign_entries_are_not_used(
    lead_signing: Ed25519PrivateKey,
) -> None:
    user = keys.UserKeys.generate()
    pin = raw(lead_signing)
    pending = keys.SignedEntry(user_entry(user), None)
    with pytest.raises(keys.DirectoryAlteredError, match="not signed by a lead"):
        keys.verified_recipient_key(pending, pin, VAULT, "drpatel")
    other_vault = keys.sign_entry(user_entry(user, vault_id=OTHER_VAULT), lead_signing)
    with pytest.raises(keys.DirectoryAlteredError, match="another vault"):
        keys.verified_recipient_key(other_vault, pin, VAULT, "drpatel")
    disabled = keys.sign_entry(user_entry(user, active=False), lead_signing)
    with pytest.raises(keys.RecipientDisabledError, match="disabled"):
        keys.verified_recipient_key(disabled, pin, VAULT, "drpatel")
    theirs = keys.sign_entry(user_entry(user), lead_signing)
    with pytest.raises(keys.DirectoryAlteredError, match="not theirs"):
        keys.verified_recipient_key(theirs, pin, VAULT, "drowen")


def test_lead_key_entry_is_verified_by_generation(lead_signing: Ed25519PrivateKey) -> None:
    lead_encryption = X25519PrivateKey.generate()
    entry = keys.LeadKeyEntry(VAULT, 2, raw(lead_encryption))
    signed = keys.sign_entry(entry, lead_signing)
    public = keys.verified_lead_key(signed, raw(lead_signing), VAULT, 2)
    assert public.public_bytes_raw() == raw(lead_encryption)
    with pytest.raises(keys.DirectoryAlteredError):
        keys.verified_lead_key(signed, raw(lead_signing), VAULT, 3)
    swapped = keys.SignedEntry(
        dataclasses.replace(entry, public_key=raw(X25519PrivateKey.generate())), signed.signature
    )
    with pytest.raises(keys.DirectoryAlteredError):
        keys.verified_lead_key(swapped, raw(lead_signing), VAULT, 2)
    # A user entry's signature cannot be passed off as a lead key entry.
    user_signed = keys.sign_entry(user_entry(keys.UserKeys.generate()), lead_signing)
    with pytest.raises(keys.DirectoryAlteredError):
        keys.verified_lead_key(user_signed, raw(lead_signing), VAULT, 1)


def test_rotation_statement_moves_the_pin(lead_signing: Ed25519PrivateKey) -> None:
    new_lead = Ed25519PrivateKey.generate()
    statement = keys.sign_rotation(lead_signing, raw(new_lead), VAULT, 2)
    new_pin = keys.verify_rotation(statement, raw(lead_signing), VAULT)
    assert new_pin == raw(new_lead)
    user = keys.UserKeys.generate()
    regranted = keys.sign_entry(user_entry(user), new_lead)
    assert keys.verify_entry(regranted, new_pin, VAULT).user_id == "drpatel"
    with pytest.raises(keys.DirectoryAlteredError):
        keys.verify_entry(regranted, raw(lead_signing), VAULT)


def test_rotation_not_signed_by_the_previous_key_is_refused(
    lead_signing: Ed25519PrivateKey,
) -> None:
    attacker = Ed25519PrivateKey.generate()
    pin = raw(lead_signing)
    # Signed by the attacker's own key: it does not start from the pin.
    own = keys.sign_rotation(attacker, raw(attacker), VAULT, 2)
    with pytest.raises(keys.DirectoryAlteredError, match="pinned lead signing key"):
        keys.verify_rotation(own, pin, VAULT)
    # Names the pinned key as the previous one, but the signature is the attacker's.
    claimed = dataclasses.replace(own, previous_key=pin)
    with pytest.raises(keys.DirectoryAlteredError, match="not signed by the previous"):
        keys.verify_rotation(claimed, pin, VAULT)
    # A genuine statement edited to point at another key.
    genuine = keys.sign_rotation(lead_signing, raw(Ed25519PrivateKey.generate()), VAULT, 2)
    with pytest.raises(keys.DirectoryAlteredError):
        keys.verify_rotation(dataclasses.replace(genuine, new_key=raw(attacker)), pin, VAULT)
    with pytest.raises(keys.DirectoryAlteredError, match="another vault"):
        keys.verify_rotation(genuine, pin, OTHER_VAULT)


def test_fingerprint_is_six_alternating_words() -> None:
    key = raw(X25519PrivateKey.generate())
    words = keys.fingerprint(key, VAULT)
    assert len(words) == 6
    assert all(w in EVEN_WORDS for w in words[0::2]) and all(w in ODD_WORDS for w in words[1::2])
    assert keys.fingerprint(key, VAULT) == words
    assert keys.fingerprint(raw(X25519PrivateKey.generate()), VAULT) != words
    typed = "-".join(w.upper() for w in words)
    assert directory.fingerprint_matches(key, VAULT, typed)
    assert not directory.fingerprint_matches(key, VAULT, " ".join(words[:5]))
    # "aardvark" is an even-list word, so it is never the sixth (odd-position) word.
    assert not directory.fingerprint_matches(key, VAULT, " ".join([*words[:5], "aardvark"]))
    swapped = [words[1], words[0], *words[2:]]
    assert not directory.fingerprint_matches(key, VAULT, " ".join(swapped))


def test_word_list_ends() -> None:
    assert (EVEN_WORDS[0], EVEN_WORDS[255]) == ("aardvark", "Zulu")
    assert (ODD_WORDS[0], ODD_WORDS[255]) == ("adroitness", "Yucatan")
    assert not set(EVEN_WORDS) & set(ODD_WORDS)


# ---- no key material in repr, str or errors -----------------------------------------------


def test_keys_never_show_their_bytes() -> None:
    clinical = keys.ClinicalKey.generate_generation(2)
    secrets: list[keys.binding.Secret] = [
        keys.PracticeKey.generate(),
        clinical,
        keys.ObjectKey.generate(),
        derive(clinical, Label.SUMMARY, VAULT),
    ]
    for secret in secrets:
        for text in (repr(secret), str(secret), f"{secret}", repr([secret])):
            assert secret.reveal().hex() not in text
            assert repr(secret.reveal())[2:-1] not in text
            assert "hidden" in text
        with pytest.raises(TypeError):
            pickle.dumps(secret)
    user = keys.UserKeys.generate()
    private = user.encryption.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    assert private.hex() not in repr(user) and "hidden" in repr(user)


def test_errors_never_include_key_material(recipient: X25519PrivateKey) -> None:
    key = keys.ObjectKey.generate()
    clinical = keys.ClinicalKey.generate_generation(1)
    wrap = keys.wrap_key(key, recipient.public_key(), object_binding())
    failures: list[Callable[[], object]] = [
        lambda: keys.unwrap_key(wrap, recipient, object_binding(recipient_id="x")),
        lambda: keys.unwrap_object_key(wrap, recipient, object_binding(), b"\x00" * 32),
        lambda: keys.open_object(key, flip(keys.seal_object(key, b"n", OBJECT), 20), OBJECT),
        lambda: keys.open_summary(
            clinical,
            flip(keys.seal_summary(clinical, b"s", keys.SummaryBinding(VAULT, "r", 1)), 20),
            keys.SummaryBinding(VAULT, "r", 1),
        ),
        lambda: derive(keys.ObjectKey(key.reveal()), Label.AUDIT, VAULT),
        lambda: keys.ObjectKey(key.reveal()[:31]),
    ]
    secrets = [key.reveal(), clinical.reveal(), raw(recipient)]
    for failure in failures:
        with pytest.raises(keys.KeyHierarchyError) as caught:
            failure()
        text = f"{caught.value!s} {caught.value!r} {caught.value.args!r}"
        for secret in secrets:
            assert secret.hex() not in text and repr(secret) not in text


# ---- a small end-to-end: an author writes, the lead and the author read, others cannot ----


def test_writer_author_and_lead_each_open_an_object(lead_signing: Ed25519PrivateKey) -> None:
    pin = raw(lead_signing)
    author, colleague = keys.UserKeys.generate(pin), keys.UserKeys.generate(pin)
    lead_encryption = X25519PrivateKey.generate()
    directory_rows = {
        "drpatel": keys.sign_entry(user_entry(author), lead_signing),
        "drowen": keys.sign_entry(user_entry(colleague, user_id="drowen"), lead_signing),
    }
    lead_row = keys.sign_entry(keys.LeadKeyEntry(VAULT, 1, raw(lead_encryption)), lead_signing)

    object_key = keys.ObjectKey.generate()
    blob = keys.seal_object(object_key, b"the child's account", OBJECT)
    stored_commitment = keys.commitment(VAULT, OBJECT.object_id, object_key)
    author_public, author_generation = keys.verified_recipient_key(
        directory_rows["drpatel"], pin, VAULT, "drpatel"
    )
    author_binding = keys.WrapBinding.for_object(
        VAULT, "answers", OBJECT.object_id, "drpatel", author_generation
    )
    lead_binding = keys.WrapBinding.for_object(VAULT, "answers", OBJECT.object_id, "lead-key", 1)
    wraps = {
        "drpatel": keys.wrap_key(object_key, author_public, author_binding),
        "lead": keys.wrap_key(
            object_key, keys.verified_lead_key(lead_row, pin, VAULT, 1), lead_binding
        ),
    }
    for wrap, private, binding in (
        (wraps["drpatel"], author.encryption, author_binding),
        (wraps["lead"], lead_encryption, lead_binding),
    ):
        opened = keys.unwrap_object_key(wrap, private, binding, stored_commitment)
        assert keys.open_object(opened, blob, OBJECT) == b"the child's account"
    # The colleague has no wrap of their own and cannot open the author's or the lead's.
    colleague_binding = dataclasses.replace(author_binding, recipient_id="drowen")
    for wrap in wraps.values():
        with pytest.raises(keys.UnwrapError):
            keys.unwrap_key(wrap, colleague.encryption, colleague_binding)
