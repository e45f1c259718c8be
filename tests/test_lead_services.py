"""The lead's workspace below the UI: follow-up, needs action, reviews, chronology, dashboard, exports."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from gpshare.cli import main
from gpshare.errors import PermissionDenied, ValidationFailed
from tests import pdftools
from tests.conftest import PASSWORDS, SCENARIOS
from tests.storehelp import raw_connection


def answers(name: str) -> dict:
    path = SCENARIOS / f"{name}.json"
    return json.loads(path.read_text())["answers"]


def complete(session, name, **changes):
    rec = session.assessments.start_assessment(answers=answers(name) | changes)
    return session.assessments.complete(rec.id)[0]


@pytest.fixture
def referral(vault_env):
    s = vault_env.session("drsmith")
    record = complete(s, "01-bruised-toddler-parents-agree")
    s.close()
    return record


def test_acknowledgement_due_one_working_day_after_sending(vault_env, referral):
    s = vault_env.session("drsmith")
    friday = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    vault_env.clock.current = friday
    s.referrals.record_followup(referral.id, "sent", details={"method": "secure_email"})
    state = s.referrals.referral_states([s.assessments.get_record(referral.id, audit_view=False)])[
        referral.id
    ]
    assert state.status == "sent" and str(state.acknowledgement_due) == "2026-11-30"  # Monday
    vault_env.clock.current = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)
    assert s.referrals.needs_action()[0].overdue is False
    vault_env.clock.current = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    items = s.referrals.needs_action()
    assert items and items[0].overdue and items[0].action == "Chase acknowledgement of the referral"
    s.close()


def test_practice_closure_day_moves_the_due_date(vault_env, referral):
    admin = vault_env.session("admin")
    admin.practice.update_settings({"local_closure_days": "2026-11-30"})
    admin.close()
    s = vault_env.session("drsmith")
    vault_env.clock.current = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    s.referrals.record_followup(referral.id, "sent")
    state = s.referrals.referral_states([s.assessments.get_record(referral.id, audit_view=False)])[
        referral.id
    ]
    assert str(state.acknowledgement_due) == "2026-12-01"
    s.close()


def test_event_order_and_tokens_are_checked(vault_env, referral):
    s = vault_env.session("drsmith")
    with pytest.raises(ValidationFailed, match="before recording its acknowledgement"):
        s.referrals.record_followup(referral.id, "acknowledged")
    s.referrals.record_followup(referral.id, "sent")
    with pytest.raises(ValidationFailed, match="already recorded as sent"):
        s.referrals.record_followup(referral.id, "sent")
    with pytest.raises(ValidationFailed, match="Choose the local authority's decision"):
        s.referrals.record_followup(referral.id, "decision", decision="maybe")
    with pytest.raises(ValidationFailed, match="in the future"):
        s.referrals.record_followup(
            referral.id, "acknowledged", at=vault_env.clock.now() + timedelta(days=2)
        )
    s.referrals.record_followup(referral.id, "acknowledged")
    s.referrals.record_followup(referral.id, "decision", decision="s47_enquiry")
    state = s.referrals.referral_states([s.assessments.get_record(referral.id, audit_view=False)])[
        referral.id
    ]
    assert state.status == "outcome_recorded" and state.decision == "s47_enquiry"
    s.close()


def test_only_leads_escalate_close_or_touch_others_records(vault_env, referral):
    s = vault_env.session("drsmith")
    s.referrals.record_followup(referral.id, "sent")
    for event in ("escalated", "closed"):
        with pytest.raises(PermissionDenied, match="only the practice safeguarding lead"):
            s.referrals.record_followup(referral.id, event)
    s.close()
    jones = vault_env.session("drjones")
    with pytest.raises(PermissionDenied):
        jones.referrals.record_followup(referral.id, "acknowledged")
    with pytest.raises(PermissionDenied):
        jones.referrals.add_review(referral.id, "reasonable")
    with pytest.raises(PermissionDenied):
        jones.lead.dashboard()
    with pytest.raises(PermissionDenied):
        jones.lead.child_chronology(referral.id)
    jones.close()
    lead = vault_env.session("lead")
    lead.referrals.record_followup(
        referral.id, "acknowledged", note="Duty social worker, Leeds front door"
    )
    lead.referrals.record_followup(referral.id, "escalated", details={"to": "Team manager"})
    lead.referrals.record_followup(referral.id, "closed")
    with pytest.raises(ValidationFailed, match="closed"):
        lead.referrals.record_followup(referral.id, "feedback")
    denied = {
        e.details["attempted"]
        for e in lead.audit_trail.audit_log()
        if e.action == "permission_denied"
    }
    assert {
        "followup_escalated",
        "followup_closed",
        "record_followup",
        "lead_review",
        "dashboard",
        "child_chronology",
    } <= denied
    lead.close()


def test_monitor_review_date_passing_needs_action(vault_env):
    s = vault_env.session("drsmith")
    record = complete(s, "03-low-level-concern-monitor", review_date="2026-12-10")
    s.close()
    lead = vault_env.session("lead")
    assert [n.record_id for n in lead.referrals.needs_action() if n.overdue] == []
    vault_env.clock.current = datetime(2026, 12, 11, 9, 0, tzinfo=UTC)
    overdue = [n for n in lead.referrals.needs_action() if n.overdue]
    assert [n.record_id for n in overdue] == [record.id] and "Review" in overdue[0].action
    with pytest.raises(ValidationFailed, match="not to share"):
        lead.referrals.record_followup(record.id, "sent")
    lead.close()


def test_lead_review_is_append_only_and_validated(vault_env, referral):
    lead = vault_env.session("lead")
    with pytest.raises(ValidationFailed, match="what needs discussing"):
        lead.referrals.add_review(referral.id, "needs_discussion")
    with pytest.raises(ValidationFailed):
        lead.referrals.add_review(referral.id, "great")
    lead.referrals.add_review(referral.id, "reasonable", learning="Good use of consent.")
    assert [r.verdict for r in lead.referrals.reviews(referral.id)] == ["reasonable"]
    from gpshare.store.sqlcipher.db import DatabaseError

    with pytest.raises(DatabaseError, match="append-only"):
        raw_connection(lead).execute("UPDATE reviews SET verdict = 'needs_discussion'")
    lead.referrals.record_followup(referral.id, "sent")
    with pytest.raises(DatabaseError, match="append-only"):
        raw_connection(lead).execute("DELETE FROM followups")
    lead.close()


def test_chronology_and_household_links(vault_env):
    s = vault_env.session("drsmith")
    first = complete(s, "03-low-level-concern-monitor")
    second = complete(s, "03-low-level-concern-monitor", prior_concerns_acknowledged=True)
    sibling = complete(
        s,
        "03-low-level-concern-monitor",
        nhs_number="9990000018",
        child_given_name="Yusuf",
        date_of_birth="2018-05-05",
    )
    unrelated = complete(s, "01-bruised-toddler-parents-agree")
    s.close()
    lead = vault_env.session("lead")
    lead.referrals.record_followup(unrelated.id, "sent")
    entries, links = lead.lead.child_chronology(second.id)
    assert {e.record_id for e in entries} == {first.id, second.id}
    assert [e.when for e in entries] == sorted(e.when for e in entries)
    assert any(e.kind == "review_due" for e in entries)
    assert [link.record.id for link in links] == [sibling.id]
    assert set(links[0].reasons) == {"same parent/carer", "same address"}
    lead.close()


def test_dashboard_numbers_on_a_known_data_set(vault_env):
    s = vault_env.session("drsmith")
    a = complete(s, "01-bruised-toddler-parents-agree")
    complete(s, "02-teen-sexual-health-refuses")
    complete(s, "03-low-level-concern-monitor")
    vault_env.clock.advance(3600 * 2)
    s.referrals.record_followup(a.id, "sent")
    vault_env.clock.advance(3600 * 4)
    s.referrals.record_followup(a.id, "acknowledged")
    s.close()
    lead = vault_env.session("lead")
    d = lead.lead.dashboard()
    assert d.completed == 3 and d.shared == 2 and d.shared_without_consent == 1
    assert d.months == ("2026-11",)
    assert d.by_pathway["2026-11"] == {"referral": 2, "monitor": 1}
    assert d.by_consent["2026-11"] == {
        "consent_given": 1,
        "shared_without_consent_refused": 1,
        "not_applicable": 1,
    }
    assert d.median_hours_to_send == pytest.approx(2.0)
    assert d.median_hours_to_acknowledge == pytest.approx(4.0)
    lead.close()


def test_csv_export_with_and_without_narratives(vault_env, tmp_path, referral):
    lead = vault_env.session("lead")
    out = tmp_path / "records.csv"
    assert lead.lead.export_records_csv(out) == 1
    text = out.read_bytes().decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["record_id"] == referral.id and rows[0]["nhs_number"] == "9434765870"
    assert "concern_narrative" not in rows[0] and "grip pattern" not in text
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    lead.lead.export_records_csv(out, include_narratives=True)
    assert "grip pattern" in out.read_text(encoding="utf-8-sig")
    assert {
        e.details.get("narratives")
        for e in lead.audit_trail.audit_log()
        if e.action == "records_exported"
    } == {True, False}
    lead.close()


def test_csv_cells_cannot_become_formulas(vault_env, tmp_path):
    s = vault_env.session("drsmith")
    complete(
        s,
        "03-low-level-concern-monitor",
        child_given_name="Bob",
        concern_narrative='=HYPERLINK("http://x")',
    )
    s.close()
    lead = vault_env.session("lead")
    lead.lead.export_records_csv(tmp_path / "r.csv", include_narratives=True)
    assert "'=HYPERLINK" in (tmp_path / "r.csv").read_text(encoding="utf-8-sig")
    lead.close()


@pdftools.needs("pdftotext")
def test_audit_pdf_report(vault_env, tmp_path, referral):
    lead = vault_env.session("lead")
    out = tmp_path / "audit.pdf"
    n = lead.audit_trail.export_audit_pdf(out)
    text = pdftools.pdftotext(out.read_bytes())
    assert "Audit report" in text and "Audit log intact" in text and n > 5
    assert "record completed" in text
    assert [f.name for f in pdftools.pdffonts(out.read_bytes()) if not f.embedded] == []
    lead.close()
    s = vault_env.session("drsmith")
    with pytest.raises(PermissionDenied):
        s.audit_trail.export_audit_pdf(tmp_path / "x.pdf")
    with pytest.raises(PermissionDenied):
        s.lead.export_records_csv(tmp_path / "x.csv")
    s.close()


def test_record_access_log_shows_views_and_prints(vault_env, referral):
    s = vault_env.session("drsmith")
    s.assessments.get_record(referral.id)
    s.close()
    lead = vault_env.session("lead")
    log = lead.lead.record_access_log(referral.id)
    assert {"record_completed", "record_viewed"} <= {e.action for e in log}
    lead.close()


def test_cli_followup_overdue_and_exports(vault_env, tmp_path, capsys, monkeypatch, referral):
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["drsmith"])
    assert (
        main(
            [
                "followup",
                referral.id,
                "--vault",
                str(vault_env.folder),
                "--user",
                "drsmith",
                "--event",
                "sent",
                "--at",
                "2026-11-20T10:00",
                "--json",
            ]
        )
        == 2
    )  # before completion (FixedClock completed on 25 Nov)
    capsys.readouterr()
    assert (
        main(
            [
                "followup",
                referral.id,
                "--vault",
                str(vault_env.folder),
                "--user",
                "drsmith",
                "--event",
                "sent",
                "--detail",
                "method=secure_email",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "sent" and out["next_action"] == "Chase acknowledgement of the referral"
    assert (
        main(
            [
                "followup",
                referral.id,
                "--vault",
                str(vault_env.folder),
                "--user",
                "drsmith",
                "--event",
                "closed",
            ]
        )
        == 1
    )
    assert "not permitted for your role" in capsys.readouterr().err.lower()
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["lead"])
    assert (
        main(["records", "--vault", str(vault_env.folder), "--user", "lead", "--overdue", "--json"])
        == 0
    )
    overdue = json.loads(
        capsys.readouterr().out
    )  # the CLI uses the real clock: overdue-ness is tested above
    assert all(r["record_id"] == referral.id for r in overdue)
    assert (
        main(
            [
                "records",
                "--vault",
                str(vault_env.folder),
                "--user",
                "lead",
                "--search",
                "grip",
                "--json",
            ]
        )
        == 0
    )
    assert len(json.loads(capsys.readouterr().out)) == 1
    assert (
        main(
            [
                "export",
                "--vault",
                str(vault_env.folder),
                "--user",
                "lead",
                "--what",
                "records",
                "--format",
                "csv",
                "--out",
                str(tmp_path / "r.csv"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "export",
                "--vault",
                str(vault_env.folder),
                "--user",
                "lead",
                "--what",
                "audit",
                "--format",
                "pdf",
                "--out",
                str(tmp_path / "a.pdf"),
            ]
        )
        == 0
    )
    assert (tmp_path / "a.pdf").read_bytes().startswith(b"%PDF")
    monkeypatch.setenv("GPSHARE_PASSWORD", PASSWORDS["drsmith"])
    capsys.readouterr()
    assert (
        main(
            [
                "export",
                "--vault",
                str(vault_env.folder),
                "--user",
                "drsmith",
                "--what",
                "records",
                "--format",
                "csv",
                "--out",
                str(tmp_path / "x.csv"),
            ]
        )
        == 1
    )
    assert "not permitted for your role" in capsys.readouterr().err.lower()
    assert not (tmp_path / "x.csv").exists()


def test_lead_confirms_or_rejects_household_links(vault_env):
    s = vault_env.session("drsmith")
    child = complete(s, "03-low-level-concern-monitor")
    sibling = complete(
        s,
        "03-low-level-concern-monitor",
        nhs_number="9990000018",
        child_given_name="Yusuf",
        date_of_birth="2018-05-05",
    )
    with pytest.raises(PermissionDenied):
        s.lead.review_household_link(child.id, sibling.id, "same_household")
    s.close()
    lead = vault_env.session("lead")
    _, links = lead.lead.child_chronology(child.id)
    assert [(link.record.id, link.status) for link in links] == [(sibling.id, "to_confirm")]
    with pytest.raises(ValidationFailed, match="not a suggested household link"):
        lead.lead.review_household_link(child.id, child.id, "same_household")
    with pytest.raises(ValidationFailed):
        lead.lead.review_household_link(child.id, sibling.id, "maybe")
    lead.lead.review_household_link(
        child.id, sibling.id, "same_household", "Confirmed with health visitor"
    )
    assert [link.status for link in lead.lead.child_chronology(child.id)[1]] == ["same_household"]
    lead.lead.review_household_link(child.id, sibling.id, "not_related")
    assert [link.status for link in lead.lead.child_chronology(child.id)[1]] == ["not_related"]
    assert any(e.action == "household_link_reviewed" for e in lead.audit_trail.audit_log())
    lead.close()


def test_csv_export_reads_page_by_page(vault_env, tmp_path, monkeypatch):
    import gpshare.services.lead as lead_mod

    s = vault_env.session("drsmith")
    ids = {
        complete(
            s,
            "03-low-level-concern-monitor",
            child_given_name=name,
            prior_concerns_acknowledged=True,
        ).id
        for name in ("Amy", "Ben", "Cara", "Dev", "Eli")
    }
    s.close()
    monkeypatch.setattr(lead_mod, "EXPORT_PAGE", 2)
    lead = vault_env.session("lead")
    calls = []
    original = lead.assessments.list_records

    def spy(flt=None, limit=None, offset=0, **kwargs):
        calls.append((limit, offset))
        return original(flt, limit, offset, **kwargs)

    monkeypatch.setattr(lead.assessments, "list_records", spy)
    assert lead.lead.export_records_csv(tmp_path / "r.csv") == 5
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text(encoding="utf-8-sig"))))
    assert {r["record_id"] for r in rows} == ids
    assert calls == [(2, 0), (2, 2), (2, 4), (2, 5)]
    lead.close()
