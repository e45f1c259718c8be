"""Recording a referral follow-up, and where the letter stands: shared by the record detail
(gpshare.ui.record_detail), My records' read-only view and the letter window
(gpshare.ui.letter_view), which is why it is a module of its own: those screens import it,
not one another (no import circle; issue #12).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QDate, QDateTime, QTime
from PySide6.QtWidgets import (
    QComboBox,
    QDateTimeEdit,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from gpshare.errors import StoreError
from gpshare.followup import EVENT_LABELS, EVENTS, LA_DECISIONS, SEND_METHODS
from gpshare.ui import dialogs
from gpshare.ui.style import refresh
from gpshare.ui.unlock import busy_cursor
from gpshare.ui.widgets import UK, fmt_when
from gpshare.ui.widgets import message_label as _message

if TYPE_CHECKING:
    from gpshare.followup import ReferralState
    from gpshare.records import FollowUp, Record
    from gpshare.services import Session

__all__ = ["FollowUpDialog", "letter_status_text", "record_sent", "show_errors"]

# The event a lead most likely records next, by referral status (only a default: any can be chosen).
NEXT_EVENT = {
    "completed": "sent",
    "sent": "acknowledged",
    "acknowledged": "decision",
    "outcome_recorded": "feedback",
    "monitor": "closed",
}


def show_errors(
    label: QLabel, exc: StoreError, fields: Mapping[str, QWidget] | None = None
) -> None:
    """Put the service's message in `label` and mark the fields it names as invalid."""
    label.setText(str(exc))
    label.show()
    named = {e.get("field") for e in getattr(exc, "errors", []) if isinstance(e, dict)}
    for field_id, widget in (fields or {}).items():
        widget.setProperty("invalid", field_id in named)
        refresh(widget)


def _wall_clock(moment: datetime) -> QDateTime:
    local = moment.astimezone(UK)
    return QDateTime(QDate(local.year, local.month, local.day), QTime(local.hour, local.minute))


def _from_wall_clock(value: QDateTime) -> datetime:
    d, t = value.date(), value.time()
    return datetime(d.year(), d.month(), d.day(), t.hour(), t.minute(), tzinfo=UK).astimezone(UTC)


class FollowUpDialog(QDialog):
    """Record a follow-up event: what happened, when, how/who, the LA decision and a note.

    The service checks the event order and the time; its message is shown here and the dialog
    stays open until the event is stored or the user cancels.
    """

    def __init__(
        self,
        session: Session,
        record: Record,
        state: ReferralState | None,
        parent: QWidget | None = None,
        *,
        events: Sequence[str] = EVENTS,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("followup_dialog")
        self.setWindowTitle(f"Record follow-up — {record.id}")
        self.session = session
        self.record = record
        self.saved: FollowUp | None = None

        self.event_choice = QComboBox()
        self.event_choice.setObjectName("followup.event")
        for token in events:
            self.event_choice.addItem(EVENT_LABELS[token], token)
        default = NEXT_EVENT.get(state.status if state else "completed", "sent")
        self.event_choice.setCurrentIndex(max(0, self.event_choice.findData(default)))
        self.at = QDateTimeEdit()
        self.at.setObjectName("followup.at")
        self.at.setCalendarPopup(True)
        self.at.setDisplayFormat("d MMM yyyy  HH:mm")
        now = _wall_clock(session.clock.now())
        self.at.setMaximumDateTime(now)
        self.at.setDateTime(now)
        self.at.setToolTip("When it happened (UK time) — not when you are recording it")
        self.method = QComboBox()
        self.method.setObjectName("followup.method")
        for token, label in SEND_METHODS.items():
            self.method.addItem(label, token)
        method = record.answers.get("method")
        if isinstance(method, str) and self.method.findData(method) >= 0:
            self.method.setCurrentIndex(self.method.findData(method))
        self.recipient = QLineEdit()
        self.recipient.setObjectName("followup.recipient")
        self.recipient.setMaxLength(200)
        recipient = record.answers.get("recipient_name")
        self.recipient.setText(recipient if isinstance(recipient, str) else "")
        self.decision = QComboBox()
        self.decision.setObjectName("followup.decision")
        self.decision.addItem("Choose the decision…", None)
        for token, label in LA_DECISIONS.items():
            self.decision.addItem(label, token)
        self.escalated_to = QLineEdit()
        self.escalated_to.setObjectName("followup.escalated_to")
        self.escalated_to.setPlaceholderText("e.g. Team manager, Leeds front door")
        self.escalated_to.setMaxLength(200)
        self.reference = QLineEdit()
        self.reference.setObjectName("followup.reference")
        self.reference.setPlaceholderText("the police (101) reference for the FGM report")
        self.reference.setMaxLength(100)
        self.note = QPlainTextEdit()
        self.note.setObjectName("followup.note")
        self.note.setPlaceholderText(
            "Who you spoke to, reference numbers, what was agreed (no more than needed)"
        )
        self.note.setTabChangesFocus(True)
        self.note.setFixedHeight(90)
        self.error = _message("followup.error", "error")

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        form.addRow("&What happened", self.event_choice)
        form.addRow("Wh&en", self.at)
        form.addRow("Sent &by", self.method)
        form.addRow("Sent &to", self.recipient)
        form.addRow("LA &decision", self.decision)
        form.addRow("Escalated t&o", self.escalated_to)
        form.addRow("Police &reference", self.reference)
        form.addRow("&Note", self.note)
        self._form = form
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.save_button = buttons.addButton(
            "&Save follow-up", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.save_button.setObjectName("followup.save")
        self.save_button.setProperty("variant", "primary")
        self.save_button.setDefault(True)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        intro = QLabel(f"Record {record.id} · {record.child.display_name} · times are UK time")
        intro.setProperty("role", "hint")
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.event_choice.currentIndexChanged.connect(self._event_changed)
        self._event_changed()
        self.setMinimumWidth(540)

    def _event_changed(self, *_args: Any) -> None:
        event = self.event_choice.currentData()
        for widget, visible in (
            (self.method, event == "sent"),
            (self.recipient, event == "sent"),
            (self.decision, event == "decision"),
            (self.escalated_to, event == "escalated"),
            (self.reference, event == "fgm_police_reported"),
        ):
            self._form.setRowVisible(widget, visible)

    def values(self) -> dict[str, Any]:
        """What will be passed to ``session.referrals.record_followup`` (besides the record id)."""
        event = self.event_choice.currentData()
        details: dict[str, str] = {}
        if event == "sent":
            details["method"] = self.method.currentData()
            if self.recipient.text().strip():
                details["recipient"] = self.recipient.text().strip()
        if event == "escalated" and self.escalated_to.text().strip():
            details["to"] = self.escalated_to.text().strip()
        if event == "fgm_police_reported":
            details["reference"] = self.reference.text().strip()
        return {
            "event": event,
            "at": _from_wall_clock(self.at.dateTime()),
            "note": self.note.toPlainText().strip() or None,
            "decision": self.decision.currentData() if event == "decision" else None,
            "details": details,
        }

    def save(self) -> None:
        v = self.values()
        try:
            with busy_cursor():
                self.saved = self.session.referrals.record_followup(
                    self.record.id,
                    v["event"],
                    at=v["at"],
                    note=v["note"],
                    decision=v["decision"],
                    details=v["details"],
                )
        except StoreError as exc:
            show_errors(
                self.error,
                exc,
                {
                    "event": self.event_choice,
                    "at": self.at,
                    "note": self.note,
                    "decision": self.decision,
                    "reference": self.reference,
                },
            )
            return
        self.accept()


def record_sent(session: Session, record: Record, parent: QWidget | None = None) -> FollowUp | None:
    """Ask how and when the referral letter was sent, and record it (a "sent" follow-up).

    The clinician does this for their own record (from the record or the letter); the lead's
    Needs action list and the record's letter status follow from the stored event.
    """
    dialog = FollowUpDialog(session, record, None, parent, events=("sent",))
    dialog.setWindowTitle(f"Record that the letter was sent — {record.id}")
    dialog.save_button.setText("&Record as sent")
    dialogs.exec_dialog(dialog)
    return dialog.saved


def letter_status_text(state: ReferralState | None) -> str:
    """One line on where the referral letter stands, for the record and the letter window."""
    if state is None:
        return ""
    if state.sent_at is None:
        return "Not recorded as sent yet. Once you have sent it, record how and when."
    text = f"Sent {fmt_when(state.sent_at)}."
    if state.acknowledged_at:
        text += f" Acknowledged {fmt_when(state.acknowledged_at)}."
    return text
