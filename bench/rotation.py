"""Benchmark: rotation by generation on a vault-v2 practice of 30 users.

Budget (DESIGN.md §10.4, docs/vault-v2.md §6): disable one of 30 users and rotate < 1 s. The
measured operation is one disable (the user's row, their disabled directory entry and the
pending mark, one audited write) followed by the lead's `session.directory.rotate()` (clinical
key g+1 wrapped for every active confirmed clinician and lead and the break-glass key, the
leaver's entry signed, one `keys_rotated` event), a different clinician each run. The
baseline, timed interleaved in the same run, is the cryptography alone: one HPKE wrap of a
clinical key for each of 30 recipients (docs/vault-v2.md §6.1 puts it at ~2 ms), so the ratio
says how much of the budget the transaction takes rather than the crypto.

The practice (admin, lead, 28 clinicians, every key confirmed by the lead, cheap test KDF) is
made in a temporary folder under $GPSHARE_BENCH_DIR and deleted afterwards. Asserts nothing.

    .venv/bin/python bench/rotation.py [--runs 11] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH_DIR, Row, add_quick, machine, measure_pair, print_table, save_rows  # noqa: E402

USERS = 30
PASSWORD = "bench-clinician-password-1"
ADMIN_PASSWORD = "bench-admin-password-1"
LEAD_PASSWORD = "bench-lead-password-1"


def make_practice(folder: Path) -> list[str]:
    """A v2 vault with an admin, a lead and USERS - 2 confirmed clinicians; their usernames."""
    from gpshare.clock import SystemClock
    from gpshare.demo import add_new_user, choose_own_password
    from gpshare.services import LeadAtInit, create_vault_v2, open_session
    from gpshare.store.crypto import CHEAP_TEST_KDF

    clock = SystemClock()
    created = create_vault_v2(
        folder,
        practice_name="Bench Surgery",
        admin_username="admin",
        admin_full_name="Bench Admin",
        admin_password=ADMIN_PASSWORD,
        lead=LeadAtInit("lead", "Dr Bench Lead", LEAD_PASSWORD, "7654321"),
        clock=clock,
        kdf=CHEAP_TEST_KDF,
    )
    admin = created.session
    names = [f"clin{i:02d}" for i in range(USERS - 2)]
    first = {
        name: add_new_user(admin, name, f"Dr {name}", "clinician", "1234567") for name in names
    }
    admin.close()
    words = {}
    for name in names:
        choose_own_password(folder, clock, name, first[name], PASSWORD)
        with_keys = open_session(folder, name, PASSWORD, clock)
        own = with_keys.directory.own_key()
        with_keys.close()
        assert own is not None
        words[name] = own.fingerprint
    lead = open_session(folder, "lead", LEAD_PASSWORD, clock)
    for name, typed in words.items():
        lead.directory.confirm(name, typed)
    lead.close()
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--json")
    add_quick(parser)
    args = parser.parse_args()
    if args.quick:
        args.runs = 3
    args.runs = min(args.runs, USERS - 3)  # one clinician leaves per run (and the warm-up)
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from gpshare.clock import SystemClock
    from gpshare.services import open_session
    from gpshare.services.rotation import mark_disabled
    from gpshare.store.keys import ClinicalKey, WrapBinding, WrapPurpose, wrap_key

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="rotation-", dir=BENCH_DIR))
    try:
        names = make_practice(workdir / "vault")
        lead = open_session(workdir / "vault", "lead", LEAD_PASSWORD, SystemClock())
        leavers = iter(names)
        vault_id = lead.vault.vault_id

        def disable_and_rotate() -> None:
            name, now = next(leavers), lead.now_iso()

            def disable(tx):  # type: ignore[no-untyped-def]
                tx.set_user_active(name, False)
                mark_disabled(tx, vault_id, name, now)

            # The admin's disable, written here because one vault opens one session at a time.
            lead._write("user_disabled", disable, details={"username": name}, actor="admin")
            lead.directory.rotate()

        recipients = [X25519PrivateKey.generate().public_key() for _ in range(USERS)]
        clinical = ClinicalKey.generate_generation(2)

        def wraps_only() -> None:
            for i, public in enumerate(recipients):
                binding = WrapBinding.for_role_key(
                    WrapPurpose.CLINICAL_KEY, vault_id, 2, f"user{i}", 1
                )
                wrap_key(clinical, public, binding)

        try:
            a, b = measure_pair(
                "disable + rotate", disable_and_rotate, "HPKE wrap × 30", wraps_only,
                args.runs, warmup=1,
            )  # fmt: skip
        finally:
            lead.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rows = [
        Row("disable one of 30 + rotate", "< 1 s", a.median, b.median, "HPKE wrap × 30"),
        Row("disable one of 30 + rotate", "< 1 s", a.p95, b.p95, "HPKE wrap × 30", stat="p95"),
    ]
    print(machine())
    print_table(f"rotation by generation, {USERS} users ({args.runs} runs)", rows)
    save_rows(args.json, "rotation", rows)


if __name__ == "__main__":
    main()
