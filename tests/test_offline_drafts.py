"""The offline draft cache (issue #14, DESIGN §10.3 "Server unreachable"): a draft saved while
the practice server cannot be reached is kept sealed on the workstation, saved when the server
is back, and completing waits for the server.

The server is made unreachable by refusing new connections to the practice's database and
ending the open ones (the shared test cluster keeps running for other tests); the UI test
(tests/test_ui_offline.py) stops and starts the cluster itself.
"""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gpshare.errors import PermissionDenied, ServerUnreachableError
from gpshare.filters import AuditFilter
from gpshare.services import Session, _offline_drafts
from gpshare.store import offline_drafts
from tests.conftest import PASSWORDS, SCENARIOS, VaultEnv, drop_server_database, make_vault_v2
from tests.pg import Cluster

ELLIE = json.loads((SCENARIOS / "01-bruised-toddler-parents-agree.json").read_text())["answers"]
# What must never appear in the cache folder's bytes: the child's names, NHS number, address
# and words of the narratives.
SECRETS = ["Ellie", "Marsh", "9434765870", "943 476 5870", "Canal Row", "bruises", "grip pattern",
           "Kayleigh"]  # fmt: skip


@dataclass
class Practice:
    env: VaultEnv
    cluster: Cluster
    database: str

    def down(self) -> None:
        """The server becomes unreachable: new connections refused, open ones ended."""
        with psycopg.connect(self.cluster.dsn(), autocommit=True) as dba:
            dba.execute(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS false')
            dba.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (self.database,),
            )

    def up(self) -> None:
        with psycopg.connect(self.cluster.dsn(), autocommit=True) as dba:
            dba.execute(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS true')

    def session(self, username: str) -> Session:
        return self.env.session(username)  # type: ignore[no-any-return]


@pytest.fixture
def practice(pg_cluster: Cluster, tmp_path: Path, clock: Any) -> Iterator[Practice]:
    name = pg_cluster.new_database()
    try:
        env = make_vault_v2(tmp_path / "pc1", clock, pg_cluster.dsn(name))
        here = Practice(env, pg_cluster, name)
        yield here
        here.up()
    finally:
        drop_server_database(pg_cluster, name)


def cache_bytes(folder: Path) -> bytes:
    where = offline_drafts.folder(folder)
    return b"".join(p.read_bytes() for p in sorted(where.iterdir())) if where.exists() else b""


def assert_no_plaintext(folder: Path) -> None:
    data = cache_bytes(folder)
    assert data, "the cache holds something"
    for word in SECRETS:
        assert word.encode() not in data, word
        assert word.encode("utf-16-le") not in data, word


def test_a_save_with_the_server_down_is_kept_sealed_and_saved_when_it_is_back(
    practice: Practice,
) -> None:
    s = practice.session("drsmith")
    try:
        draft = s.offline.start_assessment(answers={"child_given_name": "Ellie"})
        assert draft.offline is None  # the server was there: an ordinary draft
        rid = draft.record.id
        practice.down()
        saved = s.offline.save_draft(rid, ELLIE, "concern", autosave=True)
        # A result, not an exception: the caller shows it in a banner.
        assert saved.offline is not None and "Server unreachable" in saved.offline
        assert saved.record.answers["concern_narrative"] == ELLIE["concern_narrative"]
        path = offline_drafts.path_for(practice.env.folder, rid)
        assert path.exists()
        assert_no_plaintext(practice.env.folder)
        # The next save goes straight to the cache (the server is not tried on every keystroke).
        again = s.offline.save_draft(rid, {**ELLIE, "risks_to_visiting_staff": "Dog."})
        assert again.offline is not None
        [waiting] = s.offline.waiting()
        assert (waiting.record_id, waiting.child, waiting.new) == (rid, "Ellie Marsh", False)
        # Completing needs the server; the answers given are kept in the cache first.
        with pytest.raises(ServerUnreachableError) as refused:
            s.assessments.complete(rid, {**ELLIE, "risks_to_visiting_staff": "Dog, friendly."})
        assert "Completing needs the practice server" in str(refused.value)
        assert "safe on this computer" in str(refused.value)
        assert _offline_drafts.open_file(s, path)[1].answers["risks_to_visiting_staff"] == (
            "Dog, friendly."
        )
        # Still down: a flush says so and keeps the file.
        report = s.offline.flush()
        assert report.unreachable and report.saved == [] and path.exists()

        practice.up()
        report = s.offline.flush()
        assert report.saved == [rid] and report.refused == [] and report.unreachable is None
        assert not path.exists()
        stored = s.assessments.get_record(rid)  # the same session: its connection came back
        assert stored.answers["risks_to_visiting_staff"] == "Dog, friendly."
        assert stored.current_step == "concern"
        # Back to ordinary saves, and completing works again.
        assert s.offline.save_draft(rid, stored.answers).offline is None
        done, _ev = s.assessments.complete(rid, stored.answers)
        assert done.status == "completed"
    finally:
        s.close()
    assert audited(practice, "draft_saved", rid)


def audited(practice: Practice, action: str, rid: str) -> bool:
    """True when an `action` event of `rid` is marked as a save of an offline draft."""
    lead = practice.session("lead")
    try:
        events = lead.audit_trail.audit_log(AuditFilter(action=action, record_id=rid))
    finally:
        lead.close()
    return any(e.details.get("offline") is True for e in events)


def test_a_draft_started_offline_reaches_the_server_and_the_lead(practice: Practice) -> None:
    s = practice.session("drsmith")
    try:
        practice.down()
        started = s.offline.start_assessment(answers={"child_given_name": "Ellie"})
        assert started.offline is not None
        rid = started.record.id
        s.offline.save_draft(rid, ELLIE, "identity")
        [waiting] = s.offline.waiting()
        assert waiting.new and waiting.child == "Ellie Marsh"
        assert_no_plaintext(practice.env.folder)
        practice.up()
        assert s.offline.flush().saved == [rid]
    finally:
        s.close()
    assert audited(practice, "record_created", rid)
    # The wraps made offline (for the author and the pinned lead key) are the stored ones.
    lead = practice.session("lead")
    try:
        record = lead.assessments.get_record(rid)
        assert record.answers["concern_narrative"] == ELLIE["concern_narrative"]
        assert record.clinician == "drsmith"
    finally:
        lead.close()


def cached_and_closed(practice: Practice) -> tuple[str, Path]:
    """drsmith's draft, saved to the cache while the server is down, and the app closed before
    it came back: (record id, cache file). The server is up again."""
    s = practice.session("drsmith")
    rid = s.offline.start_assessment(answers={"child_given_name": "Ellie"}).record.id
    practice.down()
    s.offline.save_draft(rid, ELLIE)
    s.close()
    practice.up()
    path = offline_drafts.path_for(practice.env.folder, rid)
    assert path.exists()
    return rid, path


def test_cached_drafts_are_saved_at_the_next_sign_in(practice: Practice) -> None:
    rid, _path = cached_and_closed(practice)
    again = practice.session("drsmith")
    try:
        assert any(rid in line and "now been saved" in line for line in again.notices)
        assert not offline_drafts.path_for(practice.env.folder, rid).exists()
        assert again.assessments.get_record(rid).answers["child_family_name"] == "Marsh"
    finally:
        again.close()


def test_a_draft_saved_elsewhere_meanwhile_is_refused_naming_them_and_kept(
    practice: Practice, tmp_path: Path
) -> None:
    from gpshare.services.vaults import join_server

    other_pc = tmp_path / "pc2"
    join_server(other_pc, practice.cluster.dsn(practice.database))
    s = practice.session("drsmith")
    rid = s.offline.start_assessment(answers={"child_given_name": "Ellie"}).record.id
    s.assessments.get_record(rid)
    practice.down()
    s.offline.save_draft(rid, ELLIE)
    practice.up()
    from gpshare.services import open_session

    elsewhere = open_session(other_pc, "drsmith", PASSWORDS["drsmith"], practice.env.clock)
    try:
        elsewhere.assessments.save_draft(rid, {"child_given_name": "Ellie", "gender": "female"})
    finally:
        elsewhere.close()
    try:
        report = s.offline.flush()
        [(name, why)] = report.refused
        assert name == f"{rid}.gpdraft"
        assert "Dr Alex Smith (drsmith) saved it meanwhile" in why
        assert "kept" in why
        path = offline_drafts.path_for(practice.env.folder, rid)
        assert path.exists()  # never overwritten on the server, never lost here
        assert _offline_drafts.open_file(s, path)[1].answers["concern_narrative"]
        assert s.assessments.get_record(rid).answers.get("concern_narrative") is None
    finally:
        s.close()


def _edit(path: Path, change: Any) -> None:
    body = json.loads(path.read_bytes())
    change(body)
    path.write_text(json.dumps(body))


def _flip(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def test_a_cache_file_that_does_not_open_is_refused_named_and_kept(practice: Practice) -> None:
    s = practice.session("drsmith")
    ids = [s.offline.start_assessment(answers={"child_given_name": n}).record.id for n in "ABC"]
    practice.down()
    for rid in ids:
        s.offline.save_draft(rid, ELLIE)
    s.close()
    folder = practice.env.folder
    edited, moved, foreign = (offline_drafts.path_for(folder, rid) for rid in ids)
    _edit(edited, lambda b: b.update(answers_ct=_flip(b["answers_ct"])))
    _edit(moved, lambda b: b.update(base_version=b["base_version"] + 1))  # not its version
    _edit(foreign, lambda b: b.update(vault_id="another-practice"))
    (folder / "offline-drafts" / "SG-JUNK-0000.gpdraft").write_bytes(b"\x00 not json")
    practice.up()
    s = practice.session("drsmith")
    try:
        notices = "\n".join(s.notices)
        for path in (edited, moved, foreign):
            assert path.name in notices and path.exists()
        assert "altered or damaged" in notices and "another practice" in notices
        assert "SG-JUNK-0000.gpdraft" in notices
        assert (folder / "offline-drafts" / "SG-JUNK-0000.gpdraft").exists()
        for rid in ids:  # nothing of the files was used
            assert s.assessments.get_record(rid).answers.get("concern_narrative") is None
    finally:
        s.close()


def test_only_the_author_or_the_lead_key_opens_a_cache_file(practice: Practice) -> None:
    rid, path = cached_and_closed(practice)
    kept = path.read_bytes()
    # Another user's session (drjones signs in on the same computer): their sign-in leaves
    # drsmith's file alone, and they cannot open it, even when its header claims them.
    jones = practice.session("drjones")
    try:
        assert path.read_bytes() == kept and jones.notices == []
        with pytest.raises(offline_drafts.OfflineDraftError, match="not sealed for your key"):
            jones.offline.open_cached(path)
        _edit(path, lambda b: b.update(author="drjones"))
        with pytest.raises(offline_drafts.OfflineDraftError, match=path.name):
            jones.offline.open_cached(path)
        [(name, _why)] = jones.offline.flush().refused
        assert name == path.name and path.exists()
    finally:
        jones.close()
    path.write_bytes(kept)
    # The lead opens it with the lead key (signed in with their password): for a draft left
    # on a workstation whose author is away. The opening is audited.
    lead = practice.session("lead")
    try:
        record = lead.offline.open_cached(path)
        assert record.answers["concern_narrative"] == ELLIE["concern_narrative"]
        opened = lead.audit_trail.audit_log(AuditFilter(action="offline_draft_opened"))
        assert opened[0].record_id == rid
    finally:
        lead.close()
    admin = practice.session("admin")
    try:
        with pytest.raises(PermissionDenied):
            admin.offline.open_cached(path)
    finally:
        admin.close()


# ----- a kill while the cache file is written ---------------------------------------------------

KILL_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from gpshare.store import offline_drafts as od

    folder, i = Path(sys.argv[1]), int(sys.argv[2])
    while True:
        payload = (str(i).encode() + b"|") * 40000  # ~300 kB: a write takes a while
        draft = od.CachedDraft("v", "SG-KILL-0001", "drsmith", "f", 2, i, payload, b"m", b"c", ())
        od.write(folder, draft)
        print(i, flush=True)  # only after the rename
        i += 1
    """
)


def test_a_kill_while_writing_the_cache_leaves_the_previous_file_or_none(tmp_path: Path) -> None:
    rng = random.Random(20261203)
    path = offline_drafts.path_for(tmp_path, "SG-KILL-0001")
    for trial in range(8):
        before = offline_drafts.read(path).base_version if path.exists() else None
        proc = subprocess.Popen(
            [sys.executable, "-c", KILL_WRITER, str(tmp_path), str(trial * 1_000_000)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdout is not None
        acked = []
        for _ in range(rng.randint(0, 3)):
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(int(line))
        time.sleep(rng.uniform(0, 0.05))
        os.kill(proc.pid, signal.SIGKILL)
        rest, err = proc.communicate()
        assert proc.returncode == -signal.SIGKILL, err
        acked += [int(line) for line in rest.split()]
        if not path.exists():
            assert before is None and acked == []
            continue
        found = offline_drafts.read(path)  # whole: it decodes, its payload is one write's
        parts = set(found.answers_ct.split(b"|")[:-1])
        assert parts == {str(found.base_version).encode()}
        if acked:
            assert found.base_version >= acked[-1]
        # A temp file a kill left behind is not a cache file.
        assert offline_drafts.paths(tmp_path) == [path]


def test_a_lost_connection_comes_back_and_refuses_a_changed_history(practice: Practice) -> None:
    from gpshare.errors import DatabaseError

    s = practice.session("drsmith")
    try:
        rid = s.offline.start_assessment(answers={"child_given_name": "Ellie"}).record.id
        practice.down()
        with pytest.raises(ServerUnreachableError, match="practice server"):
            s.assessments.list_records()
        # Completing with nothing new to keep: told so, and that the draft is as last saved.
        with pytest.raises(ServerUnreachableError, match="stays as it was last saved"):
            s.assessments.complete(rid)
        assert not offline_drafts.path_for(practice.env.folder, rid).exists()
        with pytest.raises(ServerUnreachableError, match="Cannot reach the practice server"):
            s.assessments.list_records()  # tried again, still away
        practice.up()
        s.assessments.list_records()  # the same session connects again by itself
        # The server comes back with another history (the event this computer saw is gone):
        # nothing more is read or written through that connection.
        with psycopg.connect(practice.cluster.dsn(practice.database), autocommit=True) as dba:
            dba.execute("SET session_replication_role = replica")  # past the append-only guard
            dba.execute(
                "UPDATE audit SET hash = md5(hash) WHERE seq = (SELECT max(seq) FROM audit)"
            )
        practice.down()
        practice.up()
        with pytest.raises(DatabaseError, match="ROLLBACK OR FORK ALARM"):
            s.assessments.get_record(rid)  # the step that finds the connection gone reconnects
        with pytest.raises(DatabaseError, match="ROLLBACK OR FORK ALARM"):
            s.assessments.get_record(rid)
        with pytest.raises(DatabaseError, match="ROLLBACK OR FORK ALARM"):
            s.offline.save_draft(rid, ELLIE)  # nor is anything written there
    finally:
        s.close()
