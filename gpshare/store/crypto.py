"""Key derivation and key wrapping primitives used by the vault (cryptography package)."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


@dataclass(frozen=True)
class KdfParams:
    """Argon2id parameters, stored per key slot and bound into its associated data."""

    memory_kib: int
    iterations: int
    lanes: int = 1

    def to_dict(self) -> dict[str, int | str]:
        return {"alg": "argon2id", **asdict(self)}

    @staticmethod
    def from_dict(data: dict[str, object]) -> KdfParams:
        if data.get("alg") != "argon2id":
            raise ValueError("unsupported KDF")
        return KdfParams(
            memory_kib=int(str(data["memory_kib"])),
            iterations=int(str(data["iterations"])),
            lanes=int(str(data.get("lanes", 1))),
        )


# Production floor (issue #2): at least 64 MiB, t = 3.
PRODUCTION_FLOOR = KdfParams(memory_kib=64 * 1024, iterations=3, lanes=1)
# For tests only: passed explicitly, never chosen by the app on its own.
CHEAP_TEST_KDF = KdfParams(memory_kib=64, iterations=1, lanes=1)
CALIBRATION_TARGET_SECONDS = 0.5
MAX_MEMORY_KIB = 1024 * 1024


def derive(secret: bytes, salt: bytes, params: KdfParams) -> bytes:
    """Argon2id(secret, salt) -> 32 bytes."""
    kdf = Argon2id(
        salt=salt,
        length=32,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_kib,
    )
    return kdf.derive(secret)


def calibrate(target_seconds: float = CALIBRATION_TARGET_SECONDS) -> KdfParams:
    """Grow memory from the floor until one derivation takes about `target_seconds`."""
    params = PRODUCTION_FLOOR
    salt = os.urandom(16)
    while True:
        started = time.perf_counter()
        derive(b"calibration", salt, params)
        elapsed = time.perf_counter() - started
        if elapsed >= target_seconds * 0.8 or params.memory_kib >= MAX_MEMORY_KIB:
            return params
        factor = min(4.0, max(1.25, target_seconds / max(elapsed, 1e-3)))
        memory = min(MAX_MEMORY_KIB, int(params.memory_kib * factor) // 1024 * 1024)
        params = KdfParams(memory_kib=max(memory, params.memory_kib + 1024), iterations=3)


def subkey(key: bytes, purpose: str, length: int = 32) -> bytes:
    """HKDF-SHA256 sub-key for one purpose (header MAC, audit chain, signing-key wrap…)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode()).derive(
        key
    )


def wrap(kek: bytes, plaintext: bytes, associated_data: bytes) -> tuple[bytes, bytes]:
    """AES-256-GCM: returns (nonce, ciphertext)."""
    nonce = os.urandom(12)
    return nonce, AESGCM(kek).encrypt(nonce, plaintext, associated_data)


def unwrap(kek: bytes, nonce: bytes, ciphertext: bytes, associated_data: bytes) -> bytes | None:
    """AES-256-GCM decrypt; None when the key or the associated data is wrong."""
    try:
        return AESGCM(kek).decrypt(nonce, ciphertext, associated_data)
    except InvalidTag:
        return None
