"""The break-glass ceremony, its banner and acknowledgements, and the last-lead notice
(session.breakglass; docs/vault-v2.md §3 "Break-glass ceremony", "Bootstrap"; DESIGN §10.1
"Bootstrap and the last lead", "Two recovery secrets").

The break-glass code (sealed envelope, held by someone other than the practice manager)
opens an X25519 key for which every clinical and lead key generation is wrapped. An
administrator and the code holder together use it to appoint a safeguarding lead when no
lead can: the grantee's directory entry is signed with the lead signing key and the role keys
are granted to it (`keys.grant`, the one appointment step), the slot is replaced with a new
code, and `breakglass_used` is appended in the same transaction. Every lead and administrator
then sees a banner until two different users have acknowledged it.

The ceremony does not rotate the lead and clinical keys here: the rotation by generation is
written by the step-5 work and is connected to the ceremony at merge (docs/vault-v2.md §7).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from gpshare.errors import NotFound, ServiceError, ValidationFailed
from gpshare.services._base import Service
from gpshare.services.backups import legacy_backup_wraps
from gpshare.services.keyring import lead_signing_keys
from gpshare.services.keys import grant, words
from gpshare.services.record_keys import BREAKGLASS_RECIPIENT, LEAD_RECIPIENT, Recipient
from gpshare.services.rotation import Rotated, plan_rotation, rotate_in
from gpshare.store.enrolment import format_secret
from gpshare.store.keys.binding import ClinicalKey
from gpshare.store.keys.bundle import raw_public
from gpshare.store.keys.directory import ALTERED, UserEntry, fingerprint_matches
from gpshare.store.keys.errors import DirectoryAlteredError, KeyHierarchyError, UnwrapError
from gpshare.store.keys.lead import LeadKey
from gpshare.store.keys.wraps import (
    WrapBinding,
    WrapPurpose,
    unwrap_key,
    unwrap_object_key,
    wrap_key,
)
from gpshare.store.port import (
    BREAKGLASS_ACKS_NEEDED,
    BREAKGLASS_EVENT,
    ReadTx,
    RoleKeyWrap,
    WriteTx,
)

ACK_EVENT = "breakglass_acknowledged"


@dataclass(frozen=True)
class CeremonyResult:
    """What a ceremony did: who was granted which generations, and the new code (shown once)."""

    grantee: str
    fingerprint: str  # six words of the key that was granted
    clinical_generations: tuple[int, ...]
    lead_generations: tuple[int, ...]
    new_code: str
    # A practice server's enrolment secret, grouped: it goes in the new envelope too.
    enrolment_secret: str | None = None


@dataclass(frozen=True)
class BreakglassNotice:
    """The newest ceremony while its banner shows: who was granted, by whom, when and why."""

    event_seq: int
    at: str
    actor: str
    grantee: str
    reason: str
    acknowledged_by: tuple[str, ...]

    @property
    def still_needed(self) -> int:
        """How many more different users must acknowledge it."""
        return max(0, BREAKGLASS_ACKS_NEEDED - len(set(self.acknowledged_by)))

    def text(self) -> str:
        """One line for the banner and the CLI."""
        acked = (
            f" Acknowledged so far by {', '.join(self.acknowledged_by)}."
            if self.acknowledged_by
            else ""
        )
        return (
            f"Break-glass used: {self.actor} granted the safeguarding lead key to "
            f"{self.grantee} on {self.at.replace('T', ' ')[:16]}. Reason given: {self.reason}."
            f"{acked} {self.still_needed} more lead or administrator acknowledgement"
            f"{'s' if self.still_needed != 1 else ''} needed (Acknowledge, or "
            "'gpshare breakglass ack')."
        )


@dataclass(frozen=True)
class LeadCover:
    """Who holds the current lead key, and what to do when fewer than two users do."""

    holders: tuple[str, ...]

    @property
    def message(self) -> str | None:
        """The Needs action / Admin notice text, or None when two or more users hold it."""
        if not self.holders:
            return (
                "No one holds the safeguarding lead key: no one can confirm new keys or read "
                "what only a lead can. The break-glass ceremony is now the only way to appoint "
                "a lead (an administrator with the holder of the break-glass code: Admin › "
                "Break-glass, or 'gpshare breakglass --grant-lead USER')."
            )
        if len(self.holders) == 1:
            return (
                f"Only {self.holders[0]} holds the safeguarding lead key. Appoint a second lead "
                "(an administrator adds them with the lead role; the lead confirms their key "
                "words) so the practice is not left without one."
            )
        return None


def _open_role_keys(
    wraps: list[RoleKeyWrap], private: Any, vault_id: str
) -> tuple[dict[int, ClinicalKey], dict[int, LeadKey]]:
    """Every role key generation wrapped for the break-glass key this code opens. Wraps made
    for an older break-glass key (before a ceremony) do not open and are skipped."""
    clinical: dict[int, ClinicalKey] = {}
    lead: dict[int, LeadKey] = {}
    for wrap in wraps:
        try:
            raw = unwrap_key(wrap.wrap, private, wrap.binding(vault_id))
        except KeyHierarchyError:
            continue
        if wrap.key_name == "clinical":
            clinical[wrap.generation] = ClinicalKey(raw, wrap.generation)
        else:
            lead[wrap.generation] = LeadKey(raw, wrap.generation)
    return clinical, lead


def _breakglass_wraps(
    keys: list[ClinicalKey | LeadKey], public: bytes, recipient_generation: int, vault_id: str
) -> list[RoleKeyWrap]:
    """Each role key generation wrapped for the new break-glass public key."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    recipient = X25519PublicKey.from_public_bytes(public)
    wraps = []
    for key in keys:
        lead = isinstance(key, LeadKey)
        purpose = WrapPurpose.LEAD_KEY if lead else WrapPurpose.CLINICAL_KEY
        binding = WrapBinding.for_role_key(
            purpose, vault_id, key.generation, BREAKGLASS_RECIPIENT, recipient_generation
        )
        wraps.append(
            RoleKeyWrap(
                "lead" if lead else "clinical",
                key.generation,
                BREAKGLASS_RECIPIENT,
                recipient_generation,
                wrap_key(key, recipient, binding),
            )
        )
    return wraps


def _reason(reason: str, what: str) -> str:
    """The reason given for a use of the code, on one line; ValidationFailed (field `reason`)
    when there is none. `what` ends the message: what to say, and where it goes."""
    why = " ".join(reason.split())
    if not why:
        message = f"Give the reason for using the break-glass code ({what}"
        raise ValidationFailed(message, [{"field": "reason", "message": message}])
    return why


def _notice(tx: ReadTx) -> BreakglassNotice | None:
    state = tx.breakglass_state()
    if state is None or not state.banner:
        return None
    events = tx.audit_events_after(state.event_seq - 1, limit=1)
    details = events[0].details if events else {}
    actor = events[0].actor if events else "?"
    return BreakglassNotice(
        state.event_seq,
        state.used_at,
        actor,
        str(details.get("grantee", "?")),
        str(details.get("reason", "")),
        state.acknowledged_by,
    )


class BreakglassService(Service):
    """The break-glass ceremony (admin with the code holder), its banner and the acks."""

    def _vault_id(self) -> str:
        if self._session.keys is None:
            raise ServiceError(
                "This vault is version 1: it has no break-glass code (only a version-2 vault "
                "has one)."
            )
        return self._session.vault.vault_id

    def ceremony(
        self, code: str, grantee: str, reason: str, fingerprint: str | None = None
    ) -> CeremonyResult:
        """Admin, with the break-glass code holder: appoint `grantee` (a user with the lead
        role and a published key) as a safeguarding lead.

        In one transaction: sign their entry with the lead signing key, grant every clinical
        and lead key generation the code opens, wrap them for a new break-glass key, and
        append `breakglass_used` (actor, grantee, reason). The new slot is written with the
        event's header save. A wrong code is counted like a failed unlock and writes nothing.
        `fingerprint`, when given, must match the six words of the grantee's key."""
        self._require("breakglass_ceremony")
        vault_id = self._vault_id()
        session = self._session
        why = _reason(
            reason,
            "who is unavailable and why a lead is needed now): it is recorded and shown to every "
            "lead and administrator.",
        )
        with session._read() as tx:
            user = tx.get_user(grantee)
            rows = tx.directory_entries(grantee, "user")
        if user is None or not user.active:
            message = f"{grantee} is not an active user of this vault: check the username."
            raise ValidationFailed(message, [{"field": "grant_lead", "message": message}])
        if user.role != "lead":
            message = (
                f"{grantee} is a {user.role_title.lower()}, not a safeguarding lead: the lead key "
                "is granted only to a user with the lead role. Add them as a lead ('gpshare user "
                "add … --role lead', or Admin › Users), let them sign in once with their own "
                "password, then run the ceremony again."
            )
            raise ValidationFailed(message, [{"field": "grant_lead", "message": message}])
        if not rows:
            message = (
                f"{grantee} has no key yet: they must sign in once with their own password "
                "(choosing it if they still have a one-time password) so their computer makes "
                "and publishes their key. Then run the ceremony again."
            )
            raise ValidationFailed(message, [{"field": "grant_lead", "message": message}])
        row = rows[-1]
        if fingerprint is not None and not fingerprint_matches(
            row.public_key, vault_id, fingerprint
        ):
            message = (
                f"Those words do not match the key {grantee} published: nothing was done. Ask "
                f"{grantee} to read out the six words their computer shows (File › My key words, "
                "or 'gpshare keys show')."
            )
            raise ValidationFailed(message, [{"field": "fingerprint", "message": message}])
        # Only now the code: a wrong one is counted (vault.json) and raises; nothing is written.
        private = session.vault.open_breakglass(code, session.clock)
        with session._read() as tx:
            clinical, lead = _open_role_keys(
                tx.role_key_wraps(BREAKGLASS_RECIPIENT), private, vault_id
            )
            rotations = tx.lead_rotations()
            held = {
                (w.key_name, w.generation)
                for w in tx.role_key_wraps(grantee)
                if w.recipient_generation == row.generation
            }
            used = {w.recipient_generation for w in tx.role_key_wraps(BREAKGLASS_RECIPIENT)}
        if not lead:
            raise DirectoryAlteredError(
                f"{ALTERED}: the break-glass code opened its slot but no lead key is wrapped for "
                "it. Nothing was done; restore the vault from a backup."
            )
        newest = lead[max(lead)]
        chain = lead_signing_keys(rotations, vault_id)
        if not chain or raw_public(newest.signing(vault_id)) != chain[-1]:
            # The entry would be signed by a key nobody's pin or the rotation chain names.
            raise DirectoryAlteredError(
                f"{ALTERED}: the lead key the break-glass code opens is not the vault's current "
                "lead signing key. Nothing was done."
            )
        entry = UserEntry(
            vault_id, grantee, "lead", row.public_key, row.generation, True, row.lead_access_key
        )
        new_clinical = [k for g, k in sorted(clinical.items()) if ("clinical", g) not in held]
        new_lead = [k for g, k in sorted(lead.items()) if ("lead", g) not in held]
        role_keys: list[ClinicalKey | LeadKey] = [*clinical.values(), *lead.values()]
        now = session.now_iso()
        vault = session.vault
        snapshot = vault.slots_snapshot()
        new_code = vault.stage_breakglass()  # in memory: saved with the event's header write
        new_public = vault.breakglass_public_key()
        generation = max(used, default=0) + 1
        found = words(row.public_key, vault_id)
        with session._read() as tx:
            rotation_plan = plan_rotation(tx).details()

        rotated: list[Rotated] = []

        def work(tx: WriteTx) -> None:
            grant(tx, vault_id, newest, entry, new_clinical, new_lead, now)
            tx.add_role_key_wraps(_breakglass_wraps(role_keys, new_public, generation, vault_id))
            # DESIGN §10.1: the ceremony also rotates — a new clinical generation for every
            # active holder (the grantee included, granted above) and the new break-glass key,
            # and a new lead key when a lead has left — in this same transaction.
            rotated.append(
                rotate_in(
                    tx,
                    vault_id,
                    [lead[g] for g in sorted(lead)],
                    Recipient(
                        BREAKGLASS_RECIPIENT,
                        generation,
                        X25519PublicKey.from_public_bytes(new_public),
                    ),
                    now,
                )
            )

        try:
            session._write(
                BREAKGLASS_EVENT,
                work,
                details={
                    "grantee": grantee,
                    "reason": why,
                    "key_generation": row.generation,
                    "fingerprint": found,
                    "clinical_generations": sorted(clinical),
                    "lead_generations": sorted(lead),
                    "breakglass_generation": generation,
                    "rotation": rotation_plan,
                },
            )
        except BaseException:
            vault.restore_slots(session.db_key, snapshot)  # the old code stays the one that works
            raise
        enrolment_secret = vault.check_enrolment_secret()
        return CeremonyResult(
            grantee,
            found,
            tuple(sorted(clinical)),
            tuple(sorted(lead)),
            new_code,
            format_secret(enrolment_secret) if enrolment_secret is not None else None,
        )

    def open_legacy_backup(self, snapshot_name: str, code: str, reason: str) -> bytes:
        """Admin, with the break-glass code holder, when no lead can: the key of a backup
        taken before the upgrade to version 2 (decision D3), for this admin to restore it.

        The code opens the break-glass slot; the key comes from the upgrade's wrap for the
        break-glass key, or (after a ceremony replaced the code) from its wrap for a lead key
        generation the code opens. It is checked against the commitment the `vault_migrated`
        event recorded, as a lead's is, and `legacy_backup_opened` records who, that the
        break-glass code was used, and why. A wrong code is counted like a failed unlock and
        writes nothing."""
        self._require("breakglass_legacy_backup")
        session = self._session
        if session.vault.format_version < 2:
            # Checked on the header: the restore's session holds no personal keys (D3).
            raise NotFound("This vault was never upgraded: it keeps no pre-upgrade backups.")
        vault_id = session.vault.vault_id
        why = _reason(reason, "why no safeguarding lead can open this backup): it is recorded.")
        found, wraps = legacy_backup_wraps(
            session._read, snapshot_name, [BREAKGLASS_RECIPIENT, LEAD_RECIPIENT]
        )
        # Only now the code: a wrong one is counted (vault.json) and raises; nothing is written.
        private = session.vault.open_breakglass(code, session.clock)
        with session._read() as tx:
            _clinical, lead = _open_role_keys(
                tx.role_key_wraps(BREAKGLASS_RECIPIENT), private, vault_id
            )
        for wrap in wraps:
            if wrap.recipient == BREAKGLASS_RECIPIENT:
                opener = private
            elif wrap.recipient == LEAD_RECIPIENT and wrap.recipient_generation in lead:
                opener = lead[wrap.recipient_generation].encryption(vault_id)
            else:
                continue
            try:
                key = unwrap_object_key(wrap.wrap, opener, wrap.binding(vault_id), found)
            except UnwrapError:
                continue  # made for an earlier break-glass key (before a ceremony)
            session.audit(
                "legacy_backup_opened",
                None,
                {
                    "snapshot": snapshot_name,
                    "for": session.user.username,
                    "breakglass": True,
                    "via": wrap.recipient,
                    "reason": why,
                },
            )
            return key.reveal()
        raise DirectoryAlteredError(
            f"{ALTERED}: the break-glass code opened its slot, but neither it nor a lead key it "
            f"opens is one {snapshot_name}'s key is wrapped for. Nothing was done."
        )

    def notice(self) -> BreakglassNotice | None:
        """Leads and admins: the newest ceremony while fewer than two users have acknowledged
        it (the banner), else None."""
        self._require("breakglass_notice")
        with self._session._read() as tx:
            return _notice(tx)

    def acknowledge(self) -> BreakglassNotice | None:
        """Lead or admin: acknowledge the ceremony in the banner (audited). Returns the
        notice still showing, or None once two different users have acknowledged it."""
        self._require("breakglass_acknowledge")
        me = self._session.user.username
        with self._session._read() as tx:
            current = _notice(tx)
        if current is None:
            raise NotFound("There is no break-glass use waiting to be acknowledged.")
        if me in current.acknowledged_by:
            message = (
                "You have already acknowledged this break-glass use: another lead or "
                "administrator must acknowledge it too before the notice goes."
            )
            raise ValidationFailed(message, [{"field": "ack", "message": message}])
        now = self._session.now_iso()
        self._session._write(
            ACK_EVENT,
            lambda tx: tx.add_breakglass_ack(current.event_seq, me, now),
            details={"event_seq": current.event_seq, "grantee": current.grantee},
        )
        with self._session._read() as tx:
            return _notice(tx)

    def lead_cover(self) -> LeadCover | None:
        """Leads and admins: which active leads hold the current lead key (None on a
        version-1 vault). Fewer than two → its `message` asks for a second lead; none → the
        ceremony is the only way."""
        self._require("breakglass_notice")
        if self._session.keys is None:
            return None
        with self._session._read() as tx:
            return LeadCover(tuple(sorted(_lead_holders(tx))))


def _lead_holders(tx: ReadTx) -> list[str]:
    """Active leads holding the newest lead key generation for their newest signed key."""
    roles = (LEAD_RECIPIENT, BREAKGLASS_RECIPIENT)
    wraps = [w for w in tx.role_key_wraps(None, "lead") if w.recipient not in roles]
    if not wraps:
        return []
    newest = max(w.generation for w in wraps)
    holders = []
    for user in tx.list_users():
        if not user.active or user.role != "lead":
            continue
        signed = [r for r in tx.directory_entries(user.username, "user") if r.signature is not None]
        if not signed:
            continue
        mine = signed[-1].generation
        if any(
            w.recipient == user.username
            and w.generation == newest
            and w.recipient_generation == mine
            for w in wraps
        ):
            holders.append(user.username)
    return holders
