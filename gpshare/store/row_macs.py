"""Row MACs of class-M rows (docs/vault-v2.md §1), shared by both storage engines.

Every class-M row of a format-2 vault carries `row_mac` = keys.envelopes.row_mac(HKDF(practice,
"m-row"), vault id, table, row id, version, canonical row). The table list and each table's
MACed columns live here once, so the SQLCipher engine and the PostgreSQL engine MAC the same
fields under the same names: an engine whose column is named differently maps it onto the name
used here (gpshare/store/sqlcipher/row_macs.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gpshare.store.keys.envelopes import RowBinding, keyed_row_mac, verify_row_mac
from gpshare.store.keys.errors import RowMacError
from gpshare.store.practice_keys import PracticeKeys

# Appended to every row MAC refusal: the user cannot fix an edited row, a backup can.
WHAT_TO_DO = (
    "gpshare has not used it. Ask the practice administrator to restore the latest backup, "
    "and tell your safeguarding lead."
)


@dataclass(frozen=True)
class MTable:
    """An M table: its MACed columns (key first), and the column whose value is the MAC's
    version (0 when the row has none). `serial`: the key is a serial integer `id`, drawn before
    the insert so the MAC can cover it (an append-only row is never updated afterwards)."""

    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    version: str | None = None
    serial: bool = False


def _t(name: str, key: str, rest: str, version: str | None = None) -> MTable:
    keys = tuple(key.split(","))
    return MTable(name, keys, keys + tuple(rest.split(",")), version, name in _SERIAL)


# The M tables whose key is a serial `id` (records are named by their own text ids).
_SERIAL = frozenset(
    {"signing_keys", "addenda", "letters", "followups", "reviews", "household_link_reviews",
     "remembered_logins"}
)  # fmt: skip


# Ciphertext columns are not MACed: each is bound to its row by its own AAD (the codec
# refuses a moved one), and its object-key commitment, which is MACed, pins the key.
M_TABLES = {
    t.name: t
    for t in (
        _t("users", "username", "full_name,role,gmc_number,active,must_change_password,created"),
        _t("settings", "key", "value"),
        _t("practice_ca", "one", "cert_pem,nonce,wrapped,created"),
        _t("signing_keys", "id", "username,cert_pem,nonce,wrapped,source,created,active"),
        _t(
            "records",
            "id",
            "clinician,status,form_id,form_version,current_step,created,updated,completed,"
            "version,saved_by,answers_commit",
            "version",
        ),
        _t("referral_states", "record_id", "status,action,due,sent_at,acknowledged_at"),
        _t("addenda", "id", "record_id,author,created,object_id,body_commit"),
        _t(
            "letters",
            "id",
            "record_id,created,signer,sha256,object_id,pdf_commit,unsigned_object_id,"
            "unsigned_commit",
        ),
        _t(
            "followups",
            "id",
            "record_id,event,at,recorded_by,recorded_at,decision,object_id,note_commit",
        ),
        _t("reviews", "id", "record_id,reviewer,created,object_id,body_commit"),
        _t("household_link_reviews", "id", "record_id,other_record_id,reviewer,created,generation"),
        _t("remembered_logins", "id", "user_id,workstation,created,revoked"),
        _t("breakglass_acks", "event_seq,user_id", "at"),
    )
}


def mac_field(value: Any) -> str | int | bytes | None:
    """A column value as a MAC field (booleans as 0/1: keys.binding refuses bool)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


class RowMacs:
    """Computes and checks the MACs of M rows under one vault's practice keys."""

    def __init__(self, keys: PracticeKeys) -> None:
        self._keys = keys

    def binding(self, table: MTable, row: Mapping[str, Any]) -> RowBinding:
        """Which row a MAC is for: vault id, table, row id (key columns joined by "/") and
        version."""
        key = row[table.key[0]]
        # A boolean key (practice_ca's one row on PostgreSQL) binds as 1, as SQLite stores it:
        # bindings refuse booleans.
        row_id = (
            int(key)
            if isinstance(key, bool)
            else key
            if len(table.key) == 1
            else "/".join(str(row[k]) for k in table.key)
        )
        version = int(row[table.version]) if table.version else 0
        return RowBinding(self._keys.vault_id, table.name, row_id, version)

    def mac(self, table: MTable, row: Mapping[str, Any]) -> bytes:
        """The MAC of `row` (its MACed columns; other keys are ignored)."""
        fields = {c: mac_field(row[c]) for c in table.columns}
        return keyed_row_mac(self._keys.m_row_key, self.binding(table, row), fields)

    def check(self, table: MTable, row: Mapping[str, Any], mac: bytes | None) -> None:
        """RowMacError naming table and row unless `mac` is this row's MAC (a missing MAC
        is refused too: on a format-2 vault every M row has one)."""
        fields = {c: mac_field(row[c]) for c in table.columns}
        where = self.binding(table, row)
        try:
            verify_row_mac(self._keys.m_row_key, where, fields, bytes(mac or b""))
        except RowMacError as exc:
            raise RowMacError(f"{exc}. {WHAT_TO_DO}") from None
