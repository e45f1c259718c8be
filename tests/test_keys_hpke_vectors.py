"""RFC 9180 test vectors through the same HPKE Suite the key hierarchy wraps with.

Vectors: tests/fixtures/hpke/ (see its README for the source). Each vector's encryption 0 has
the AAD "Count-0", which the public one-shot API does not take, so the vector is opened with
cryptography's internal `_decrypt_with_aad` on the same Suite object (cryptography's own HPKE
tests do the same); everything gpshare wraps uses the public `Suite.encrypt/decrypt`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from gpshare.store import keys

VECTORS = json.loads(
    (Path(__file__).parent / "fixtures/hpke/rfc9180-base-x25519-hkdf-sha256.json").read_text()
)
OUR_SUITE = [v for v in VECTORS if v["aead_id"] == 2]
RFC_A1 = [v for v in VECTORS if v["aead_id"] == 1]


def _raw_public(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def _open_vector(suite: Suite, vector: dict[str, Any], **changes: bytes) -> bytes:
    encryption = vector["encryptions"][0]
    recipient = X25519PrivateKey.from_private_bytes(bytes.fromhex(vector["skRm"]))
    blob = bytes.fromhex(vector["enc"]) + bytes.fromhex(encryption["ct"])
    info = changes.get("info", bytes.fromhex(vector["info"]))
    aad = changes.get("aad", bytes.fromhex(encryption["aad"]))
    blob = changes.get("blob", blob)
    return rust_openssl.hpke._decrypt_with_aad(suite, blob, recipient, info=info, aad=aad)


def test_fixture_holds_the_suite_of_the_binding_table() -> None:
    assert len(OUR_SUITE) == 1
    vector = OUR_SUITE[0]
    assert (vector["mode"], vector["kem_id"], vector["kdf_id"]) == (0, 0x20, 1)
    # The RFC's Appendix A.1 vector: its ephemeral public key is the one printed in RFC 9180.
    assert RFC_A1[0]["pkEm"].startswith("37fda3567bdbd628e88668c3c8d7e97d")


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"aead{v['aead_id']}")
def test_vector_keys_are_consistent(vector: dict[str, Any]) -> None:
    recipient = X25519PrivateKey.from_private_bytes(bytes.fromhex(vector["skRm"]))
    ephemeral = X25519PrivateKey.from_private_bytes(bytes.fromhex(vector["skEm"]))
    assert _raw_public(recipient).hex() == vector["pkRm"]
    assert _raw_public(ephemeral).hex() == vector["enc"]


def test_vector_opens_through_the_module_suite() -> None:
    vector = OUR_SUITE[0]
    plaintext = _open_vector(keys.HPKE_SUITE, vector)
    assert plaintext.hex() == vector["encryptions"][0]["pt"]
    assert plaintext == b"Beauty is truth, truth beauty"


def test_rfc_appendix_a1_vector_opens_with_aes128() -> None:
    vector = RFC_A1[0]
    suite = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_128_GCM)
    assert _open_vector(suite, vector).hex() == vector["encryptions"][0]["pt"]


def test_module_suite_is_aes256_not_aes128() -> None:
    # The A.1 ciphertext (AES-128-GCM) must not open under the module's AES-256-GCM suite.
    with pytest.raises(InvalidTag):
        _open_vector(keys.HPKE_SUITE, RFC_A1[0])


@pytest.mark.parametrize(
    "change",
    [
        {"info": b"Ode to a Nightingale"},
        {"aad": b"Count-1"},
        {"aad": b""},
    ],
    ids=["other-info", "other-aad", "no-aad"],
)
def test_vector_refuses_a_changed_context(change: dict[str, bytes]) -> None:
    with pytest.raises(InvalidTag):
        _open_vector(keys.HPKE_SUITE, OUR_SUITE[0], **change)


def test_vector_refuses_a_flipped_byte() -> None:
    vector = OUR_SUITE[0]
    blob = bytearray(bytes.fromhex(vector["enc"]) + bytes.fromhex(vector["encryptions"][0]["ct"]))
    for position in (0, 32, len(blob) - 1):  # the encapsulated key, the body, the tag
        tampered = bytearray(blob)
        tampered[position] ^= 0x01
        with pytest.raises(InvalidTag):
            _open_vector(keys.HPKE_SUITE, vector, blob=bytes(tampered))


def test_module_wraps_are_hpke_base_messages_of_that_suite() -> None:
    # A wrap is header ‖ enc (32 bytes) ‖ AES-256-GCM body, and opens with the public Suite API
    # given the same canonical info: the module builds nothing by hand.
    recipient = X25519PrivateKey.generate()
    binding = keys.WrapBinding.for_object("vault-1", "answers", "obj-1", "drpatel", 1)
    key = keys.ObjectKey.generate()
    wrap = keys.wrap_key(key, recipient.public_key(), binding)
    head, body = wrap[:6], wrap[6:]
    assert len(body) == 32 + 32 + 16
    assert keys.HPKE_SUITE.decrypt(body, recipient, info=binding.info(head)) == key.reveal()
