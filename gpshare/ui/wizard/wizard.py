"""The assessment wizard: pages generated from the form, driven by the navigator.

The wizard holds the answers and asks the navigator (through ``session.assessments.evaluate``) what to
show after every change: which steps and fields are visible, which errors, prompts and
outcome apply. It decides only *when* to show an error:

- "required" errors once the user has left that step, or has reached the summary / pressed
  Complete (an empty page is never shouted at);
- "invalid" and "rule" errors as soon as the field's value is complete (a radio clicked,
  ten NHS digits typed, Return pressed) or the field loses focus — and not while it is being
  typed into.

Drafts are saved every few seconds while there are unsaved changes, on every page change, on
Ctrl+S and when the application is about to lock. A draft is created in the vault only once
there is something to save.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, QSize, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QKeySequence, QResizeEvent, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from gpshare.clock import today
from gpshare.errors import StoreError, ValidationFailed
from gpshare.forms import Form, FormError, load_form_by_id
from gpshare.navigator import Evaluation, FieldError, PriorRecord, is_empty
from gpshare.nhs_number import format_334, normalise
from gpshare.ui import dialogs
from gpshare.ui.widgets import ElidedLabel, fmt_date, plain_label, rich_label, set_prop
from gpshare.ui.wizard.pages import (
    WIZARD_QSS,
    Banner,
    ChronologyPanel,
    FieldRow,
    GuidancePanel,
    StepPage,
    chronology_summary,
    split_message,
    step_icon,
)
from gpshare.ui.wizard.summary import SummaryPage
from gpshare.ui.worker import Task

if TYPE_CHECKING:
    from gpshare.services import Session
    from gpshare.services.offline import FlushReport

log = logging.getLogger(__name__)

DEFAULT_FORM_ID = "england-child-safeguarding"
SUMMARY = "summary"
AUTOSAVE_INTERVAL_MS = 5_000
# While the practice server is unreachable, a worker tries to save the cached drafts this often.
OFFLINE_RETRY_MS = 30_000
OFFLINE_TITLE = "Server unreachable — this draft is kept encrypted on this computer"
OFFLINE_BODY = (
    "It will be saved to the practice server when the server is back; gpshare tries again "
    "every 30 seconds. Keep working: completing the assessment waits for the server."
)
STEPS_WIDTH = 232
COMPACT_STEPS_WIDTH = 184
CENTRE_MIN_WIDTH = 440
COMPACT_BELOW = 1000  # wizard width (not window width) under which the guidance folds away
# The shortcuts are written on the buttons (not only in tooltips) so they are discoverable.
NEXT_TEXT = "Next →  Alt+N"
LAST_NEXT_TEXT = "Check →  Alt+N"
ACK_FIELD = "prior_concerns_acknowledged"
# Date fields that start as today when they appear (advice is nearly always sought the same
# day); the clinician can change or clear it, and a cleared date is not filled in again.
TODAY_DEFAULTS = (
    "advice_date",
    "fgm_discovered_on",
)  # R4: the one-month limit runs from the discovery
# The decision step already says who the referral goes to: the sharing step starts from it
# instead of asking again (the clinician can still choose another recipient).
RECIPIENT_FROM_DECISION = {"refer_csc": "csc", "refer_police": "police"}
# Rule R8 (data dictionary v2): for these decisions the letter must include the child's
# identity and the reasons, and the parents' identities unless a reason for leaving them out
# is given. The sharing step starts with them ticked; the clinician can untick the parents.
R8_DECISIONS = ("refer_csc", "refer_police", "required_by_law", "respond_to_request")
R8_INCLUDED = ["child_identity", "parent_identities", "reasons"]
UNEXPECTED = (
    "Something unexpected went wrong. Your answers are still on screen; try again, and if it "
    "keeps happening tell your practice administrator."
)
DEFAULT_NOTE = "Filled in from the practice settings: check it is right for this child."


class BannerArea(QScrollArea):
    """The prompts above a step. They take at most a share of the wizard's height and scroll
    beyond it, so that on a small screen (1024×700) with several prompts raised the step's own
    questions stay on screen; the most serious prompt is first."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("wizard.banners_area")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.inner = QWidget(self)
        self.inner.setObjectName("wizard.banners")
        self.setWidget(self.inner)
        self._cap = 10_000

    def fit(self, cap: int) -> None:
        """Be as tall as the prompts need, up to `cap` pixels."""
        self._cap = max(110, cap)
        layout = self.inner.layout()
        width = self.viewport().width()
        if layout is not None and layout.hasHeightForWidth() and width > 0:
            need = layout.totalHeightForWidth(width)
        else:
            need = self.inner.sizeHint().height()
        self.setFixedHeight(min(need + 2, self._cap))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        # wrapped prompt text changes height with the width: re-fit without recursing
        QTimer.singleShot(0, lambda: self.fit(self._cap))


class AssessmentWizard(QWidget):
    """Walks a clinician through one assessment and completes it.

    Public API used by the application shell:

    - ``start_new()`` — a fresh assessment (no draft is stored until there is an answer);
    - ``open_record(record_id)`` — resume a draft on its saved step;
    - ``save_now()`` — save the draft now (connect ``MainWindow.about_to_lock`` to it);
    - ``current_record_id`` / ``current_step_id`` — what to reopen after an unlock;
    - ``completed(record_id)`` — emitted after a successful completion;
    - ``draft_saved(record_id)`` — emitted after every successful save.
    """

    completed = Signal(str)
    draft_saved = Signal(str)
    record_opened = Signal(str)

    def __init__(
        self,
        session: Session,
        parent: QWidget | None = None,
        *,
        form_id: str = DEFAULT_FORM_ID,
        autosave_interval_ms: int = AUTOSAVE_INTERVAL_MS,
        start: bool = True,
        offline_retry_ms: int = OFFLINE_RETRY_MS,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("wizard")
        self.setStyleSheet(WIZARD_QSS)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._session = session
        self._form_id = form_id
        self._form: Form | None = None
        self._record_id: str | None = None
        self._current: str | None = None
        self._answers: dict[str, Any] = {}
        self._defaults: dict[str, Any] = {}  # what a new assessment starts with (not typed)
        self._evaluation: Evaluation | None = None
        self._service_errors: list[FieldError] = []
        self._left: set[str] = set()
        self._committed: set[str] = set()
        self._defaulted: set[str] = set()
        self._editing: set[str] = set()
        self._reviewed = False
        self._dirty = False
        self._loading = False
        self._finished = False
        self._prior_key: tuple[Any, ...] | None = None
        self._prior: list[PriorRecord] = []
        self._rows: dict[str, FieldRow] = {}
        self._pages: dict[str, StepPage] = {}
        self._owner: dict[int, str] = {}
        self._chronology: ChronologyPanel | None = None
        self._banners: dict[str, Banner] = {}
        self._carry_lines: list[str] = []  # answers mapped/dropped when a draft was carried
        self._carry_step: str | None = None
        self._view: QWidget | None = None
        self._drafts_notice: Banner | None = None
        self.problem: str | None = None

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self._screens = QStackedWidget(self)
        outer.addWidget(self._screens)
        self._message_page = self._build_message_page()
        self._screens.addWidget(self._message_page)

        self._timer = QTimer(self)
        self._timer.setObjectName("wizard.autosave_timer")
        self._timer.setInterval(autosave_interval_ms)
        self._timer.timeout.connect(self.autosave_tick)
        # The server unreachable: the banner, and the worker that saves the cached drafts.
        self._offline = False
        self._offline_task: Task | None = None
        self._offline_banner: Banner | None = None
        self._retry_timer = QTimer(self)
        self._retry_timer.setObjectName("wizard.offline_retry_timer")
        self._retry_timer.setInterval(offline_retry_ms)
        self._retry_timer.timeout.connect(self.retry_offline)

        self._shortcuts: list[QShortcut] = []
        for keys, slot in (
            ("Alt+Left", self.go_back),
            ("Alt+Right", self.go_next),
            ("Alt+N", self.go_next),
            ("Alt+B", self.go_back),
            ("Alt+G", self._toggle_guidance),
            ("Ctrl+S", self._save_clicked),
            ("Ctrl+Return", self._complete_shortcut),
            ("Ctrl+Enter", self._complete_shortcut),
        ):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)
            self._shortcuts.append(shortcut)

        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.focusChanged.connect(self._focus_changed)
        if start:
            self.start_new()

    # ----- public API ---------------------------------------------------------------------------
    @property
    def session(self) -> Session:
        return self._session

    def set_session(self, session: Session) -> None:
        """Use a new session (after an unlock); reopen the draft with ``open_record``."""
        self._session = session
        self._prior_key = None
        # The sign-in flushed (or listed) the cached drafts: the new session starts online.
        self._set_offline(None)

    @property
    def form(self) -> Form | None:
        return self._form

    @property
    def current_record_id(self) -> str | None:
        """The draft being edited (None until something has been saved)."""
        return self._record_id

    @property
    def current_step_id(self) -> str | None:
        """The step on screen: a form step id, or ``"summary"``."""
        return self._current

    @property
    def evaluation(self) -> Evaluation | None:
        return self._evaluation

    @property
    def is_dirty(self) -> bool:
        return self._dirty

    @property
    def is_finished(self) -> bool:
        return self._finished

    def answers(self) -> dict[str, Any]:
        """The answers as they stand (unanswered fields left out)."""
        return dict(self._answers)

    def input_widget(self, field_id: str) -> QWidget:
        """The input widget of a field (its objectName is the field id)."""
        return self._rows[field_id].input

    def row(self, field_id: str) -> FieldRow:
        return self._rows[field_id]

    def enter_target(self, field_id: str) -> str | None:
        """Where Enter in `field_id` goes: the next field of the step that is shown, required
        and still unanswered, or None when there is none (then Enter moves to the next step)."""
        ev = self._evaluation
        page = self._pages.get(self._current or "")
        if ev is None or page is None or field_id not in page.rows:
            return None
        required = {e.field for e in ev.errors if e.kind == "required"}
        ids = list(page.rows)
        for fid in ids[ids.index(field_id) + 1 :]:
            if fid in required and fid in ev.visible_fields and not page.rows[fid].isHidden():
                return fid
        return None

    def field_of_focus(self) -> str | None:
        """The field holding the keyboard focus, if any."""
        return self._field_of(QApplication.focusWidget())

    def show_drafts_notice(
        self,
        count: int,
        latest_name: str,
        *,
        continue_latest: Callable[[], object],
        show_all: Callable[[], object],
    ) -> None:
        """A notice above a fresh assessment: "N drafts in progress", with Continue the latest
        (Alt+L) and My records. It goes away once anything is typed or a draft is opened."""
        if self._view is None:
            return
        if self._drafts_notice is not None:
            self._banner_layout.removeWidget(self._drafts_notice)
            self._drafts_notice.deleteLater()
        plural = "s" if count != 1 else ""
        notice = Banner(
            "info",
            f"You have {count} draft{plural} in progress.",
            f"The latest is for {latest_name or 'a child not yet named'}. Continue it, or "
            "start a new assessment below.",
            name="wizard.drafts_notice",
        )
        resume = notice.add_action("Continue the &latest draft", "wizard.continue_draft")
        resume.clicked.connect(lambda: self._leave_drafts_notice(continue_latest))
        others = notice.add_action("See all in My records", "wizard.show_drafts")
        others.clicked.connect(lambda: self._leave_drafts_notice(show_all))
        self._banner_layout.insertWidget(0, notice)
        self._banners_widget.show()
        self._fit_banners()
        self._drafts_notice = notice

    def drafts_notice_text(self) -> str:
        """The drafts notice on screen, or "" (for tests and tools)."""
        notice = self._drafts_notice
        return notice.text() if notice is not None and not notice.isHidden() else ""

    def _leave_drafts_notice(self, then: Callable[[], object]) -> None:
        self._hide_drafts_notice()
        then()

    def _hide_drafts_notice(self) -> None:
        if self._drafts_notice is not None:
            self._drafts_notice.hide()

    def start_new(self) -> bool:
        """Begin a fresh assessment. False (and a message on screen) if the form is unusable."""
        self._save_before_switching()
        try:
            form = load_form_by_id(self._form_id)
        except FormError as exc:
            self._show_form_problem(exc)
            return False
        except Exception:
            log.exception("loading the form failed")
            self._show_problem("The assessment cannot start", UNEXPECTED)
            return False
        try:
            # Practice defaults (recipient, local authority) are shown from the start, as the
            # service would add them to the draft anyway; they do not count as typing.
            defaults = self._session.assessments.assessment_defaults(form.id)
        except StoreError as exc:
            self._show_problem("The assessment cannot start", str(exc))
            return False
        self._setup(form, defaults, None, None)
        self._defaults = dict(self._answers)
        self._show_default_notes()
        return True

    def open_record(self, record_id: str) -> bool:
        """Resume a draft on the step it was saved on. False (with a message) if it cannot."""
        if record_id == self._record_id and self._form is not None and not self._finished:
            return True
        self._save_before_switching()
        try:
            # One call: the draft, carried to the newest form version when it was made with
            # an older one (audited), and its form.
            view = self._session.views.draft_view(record_id)
        except FormError as exc:
            self._show_form_problem(exc)
            return False
        except StoreError as exc:
            self._show_problem("This draft cannot be opened", str(exc))
            return False
        record, form, carry_lines = view.record, view.form, list(view.carried)
        if form is None:
            self._show_problem(
                "This assessment is already complete",
                f"Record {record.id} has been completed and cannot be changed. Open it from "
                "My records to read it or to add an addendum.",
            )
            return False
        answers = record.answers if isinstance(record.answers, Mapping) else {}
        self._hide_drafts_notice()
        self._defaults = {}
        self._setup(form, dict(answers), record.id, record.current_step)
        self._show_default_notes()
        if carry_lines:
            self._show_carried(carry_lines)
        self.record_opened.emit(record.id)
        return True

    def _show_default_notes(self) -> None:
        """Mark each answer that still holds the practice default, so it is checked for this
        child (the practice's local authority is not every child's; hazard log H-19, H-20)."""
        for fid, row in self._rows.items():
            name = f"{fid}.default_note"
            note = row.findChild(QLabel, name)
            show = fid in self._defaults and self._answers.get(fid) == self._defaults[fid]
            if show and note is None:
                note = plain_label(DEFAULT_NOTE, "fieldhelp")
                note.setObjectName(name)
                outer = row.layout()
                if isinstance(outer, QVBoxLayout):  # FieldRow's own layout
                    outer.insertWidget(outer.indexOf(row.error) + 1, note)
            if note is not None:
                note.setVisible(show)

    def _show_carried(self, lines: list[str]) -> None:
        """List what changed in a carried draft, on the first step with an error."""
        self._carry_lines = list(lines)
        ev = self._evaluation
        target = self._current
        if ev is not None:
            for error in ev.errors:
                if error.step in ev.visible_steps:
                    target = error.step
                    break
        self._carry_step = target
        if target is not None and target != self._current:
            self._go(target, leaving=False, save=False)
        else:
            self._refresh(evaluate=False)

    def save_now(self, *, autosave: bool = False) -> bool:
        """Save the draft now. True when saved (or nothing needed saving)."""
        if self._form is None or self._finished:
            return True
        if self._record_id is None and self._answers == self._defaults:
            return True  # nothing typed yet: do not litter the records with empty drafts
        try:
            if self._record_id is None:
                started = self._session.offline.start_assessment(self._form.id, self._answers)
                self._record_id = started.record.id
            saved = self._session.offline.save_draft(
                self._record_id, self._answers, self._step_to_save(), autosave=autosave
            )
        except StoreError as exc:
            self._set_save_status(f"Not saved: {exc}", failed=True)
            if not autosave:
                dialogs.error(self, "Draft not saved", str(exc))
            return False
        except Exception:
            log.exception("saving a draft failed")
            self._set_save_status("Not saved: an unexpected problem occurred.", failed=True)
            if not autosave:
                dialogs.error(self, "Draft not saved", UNEXPECTED)
            return False
        self._dirty = False
        when = self._session.clock.now().astimezone().strftime("%H:%M:%S")
        if saved.offline:
            # Not a modal: the GP is mid-consultation. The banner says where the draft is.
            self._set_offline(saved.offline)
            self._set_save_status(f"Kept on this computer at {when} (server unreachable)")
        else:
            self._set_save_status(f"Saved at {when}")
        self._update_header()
        self.draft_saved.emit(self._record_id)
        return True

    def autosave_tick(self) -> None:
        """The autosave timer's slot: save when there are unsaved changes."""
        if self._dirty and not self._finished:
            self.save_now(autosave=True)

    def go_to_step(self, step_id: str) -> None:
        """Show a step (or ``"summary"``); leaving the current step counts as having visited it."""
        if self._form is None or self._finished:
            return
        if step_id != SUMMARY and step_id not in self._pages:
            return
        self._go(step_id)

    def go_next(self) -> None:
        order = self._order()
        if self._current in order:
            index = order.index(self._current)
            if index + 1 < len(order):
                self._go(order[index + 1])

    def go_back(self) -> None:
        order = self._order()
        if self._current in order:
            index = order.index(self._current)
            if index > 0:
                self._go(order[index - 1])

    def focus_field(self, field_id: str) -> bool:
        """Go to the step holding the field, scroll it into view and put the focus in it."""
        if self._form is None or field_id not in self._rows:
            return False
        step = self._form.step_of(field_id).id
        if self._current != step:
            self._go(step, focus=False)
        row = self._rows[field_id]
        page = self._pages[step]
        page.ensureWidgetVisible(row, 0, 60)
        QApplication.processEvents()
        page.ensureWidgetVisible(row, 0, 60)
        row.input.focus_input()  # type: ignore[attr-defined]
        return True

    def complete(self) -> bool:
        """Complete the assessment through the service. True on success."""
        if self._form is None or self._finished:
            return False
        self._reviewed = True
        if not self.save_now():
            self._refresh()
            return False
        if self._record_id is None:
            self._refresh()
            self._go(SUMMARY)
            return False
        try:
            record, _evaluation = self._session.assessments.complete(self._record_id, self._answers)
        except ValidationFailed as exc:
            self._service_errors = [e for e in (_as_field_error(x) for x in exc.errors) if e]
            self._dirty = False
            self._refresh()
            self._go(SUMMARY)
            self._set_save_status(str(exc), failed=True)
            return False
        except StoreError as exc:
            dialogs.error(self, "The assessment was not completed", str(exc))
            return False
        except Exception:
            log.exception("completing a record failed")
            dialogs.error(self, "The assessment was not completed", UNEXPECTED)
            return False
        self._finished = True
        self._dirty = False
        self._timer.stop()
        self._show_done(record)
        self.completed.emit(record.id)
        return True

    # ----- building ------------------------------------------------------------------------------
    def _build_message_page(self) -> QWidget:
        page = QWidget()
        page.setObjectName("wizard.message_page")
        layout = QVBoxLayout(page)
        layout.setContentsMargins(40, 32, 40, 32)
        layout.setSpacing(12)
        self._message_title = plain_label("")
        self._message_title.setProperty("heading", "h1")
        layout.addWidget(self._message_title)
        self._message_banner = Banner("critical", "", name="wizard.problem")
        self._message_banner.setMaximumWidth(900)
        layout.addWidget(self._message_banner)
        self._message_details = rich_label("")
        self._message_details.setObjectName("wizard.message_details")
        self._message_details.setMaximumWidth(900)
        layout.addWidget(self._message_details)
        buttons = QHBoxLayout()
        self._new_button = QPushButton("Start a new assessment")
        self._new_button.setObjectName("wizard.new")
        self._new_button.setProperty("variant", "primary")
        self._new_button.clicked.connect(self.start_new)
        buttons.addWidget(self._new_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        layout.addStretch(1)
        return page

    def _build_view(self, form: Form) -> None:
        """Create every widget for `form`, in keyboard (tab) order: fields, buttons, steps, guidance."""
        if self._view is not None:
            self._screens.removeWidget(self._view)
            self._view.deleteLater()
        self._rows.clear()
        self._pages.clear()
        self._owner.clear()
        self._banners.clear()
        self._drafts_notice = None

        view = QWidget()
        view.setObjectName("wizard.view")
        self._screens.addWidget(view)
        root = QVBoxLayout(view)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)

        # header
        header = QFrame(view)
        header.setObjectName("wizard.header")
        root.addWidget(header)
        head = QHBoxLayout(header)
        head.setContentsMargins(20, 10, 20, 10)
        # The header never widens the window: the title wraps, the child's details are elided
        # (whole text in the tooltip) however long the names typed.
        title = plain_label(form.title)
        title.setObjectName("wizard.title")
        title.setMinimumWidth(160)
        head.addWidget(title, 2)
        who = QVBoxLayout()
        who.setSpacing(0)
        self._child_label = ElidedLabel()
        self._child_label.setObjectName("wizard.child")
        self._child_label.setAlignment(Qt.AlignmentFlag.AlignRight)
        self._record_label = ElidedLabel()
        self._record_label.setObjectName("wizard.record")
        self._record_label.setAlignment(Qt.AlignmentFlag.AlignRight)
        who.addWidget(self._child_label)
        who.addWidget(self._record_label)
        head.addLayout(who, 3)
        self.guidance_button = QPushButton("Guidance  Alt+G")
        self.guidance_button.setObjectName("wizard.guidance_toggle")
        self.guidance_button.setCheckable(True)
        self.guidance_button.setProperty("variant", "link")
        self.guidance_button.setToolTip("Show or hide the guidance for this step (Alt+G)")
        self.guidance_button.toggled.connect(lambda _on: self._fit_panels())
        head.addSpacing(12)
        head.addWidget(self.guidance_button)
        self.start_new_button = QPushButton("Start another")
        self.start_new_button.setObjectName("wizard.start_new")
        self.start_new_button.setToolTip(
            "Save this draft (it stays in My records) and start a new assessment"
        )
        self.start_new_button.setAccessibleName("Save this draft and start another assessment")
        self.start_new_button.setProperty("variant", "link")
        self.start_new_button.clicked.connect(self.start_new)
        head.addSpacing(16)
        head.addWidget(self.start_new_button)

        body = QHBoxLayout()
        body.setContentsMargins(0, 0, 0, 0)
        body.setSpacing(0)
        root.addLayout(body, 1)

        centre = QWidget(view)
        centre.setObjectName("wizard.centre")
        # Its own minimum, not its children's: a wide control must wrap or shrink (the fit test
        # checks they do), never push the window wider.
        centre.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        centre.setMinimumWidth(CENTRE_MIN_WIDTH)
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(0, 0, 0, 0)
        centre_layout.setSpacing(0)

        offline_area = QWidget(centre)
        offline_area.setObjectName("wizard.offline_area")
        offline_layout = QVBoxLayout(offline_area)
        offline_layout.setContentsMargins(28, 12, 28, 0)
        self._offline_banner = Banner(
            "warning", OFFLINE_TITLE, OFFLINE_BODY, name="wizard.offline_banner"
        )
        offline_layout.addWidget(self._offline_banner)
        offline_area.setVisible(self._offline)
        centre_layout.addWidget(offline_area)
        self._offline_area = offline_area

        banners = BannerArea(centre)
        self._banner_layout = QVBoxLayout(banners.inner)
        self._banner_layout.setContentsMargins(28, 12, 28, 0)
        self._banner_layout.setSpacing(6)
        centre_layout.addWidget(banners)
        self._banners_widget = banners

        self._stack = QStackedWidget(centre)
        self._stack.setObjectName("wizard.stack")
        centre_layout.addWidget(self._stack, 1)
        for step in form.steps:
            page = StepPage(step)
            self._stack.addWidget(page)
            self._pages[step.id] = page
            for fid, row in page.rows.items():
                self._rows[fid] = row
                self._wire(fid, row)
        ack_step = self._ack_step(form)
        if ack_step is not None:
            self._chronology = ChronologyPanel()
            self._pages[ack_step].extra.addWidget(self._chronology)
        else:
            self._chronology = None
        self._summary = SummaryPage()
        self._summary.error_activated.connect(self.focus_field)
        self._stack.addWidget(self._summary)

        # footer (after the fields in tab order)
        footer = QFrame(centre)
        footer.setObjectName("wizard.footer")
        centre_layout.addWidget(footer)
        foot = QHBoxLayout(footer)
        foot.setContentsMargins(20, 10, 20, 10)
        foot.setSpacing(10)
        # Created in keyboard order: Tab from the last field reaches Next (or Complete) first;
        # Back and Save draft come after it. The layout order below is unchanged.
        self.next_button = QPushButton(NEXT_TEXT)
        self.next_button.setObjectName("wizard.next")
        self.next_button.setToolTip(
            "Next step (Alt+N, Alt+Right, or Enter in a one-line field or a choice)"
        )
        self.next_button.setAccessibleName("Next")
        self.next_button.setProperty("variant", "primary")
        self.next_button.clicked.connect(self.go_next)
        self.complete_button = QPushButton("Complete  Ctrl+Enter")
        self.complete_button.setObjectName("wizard.complete")
        self.complete_button.setAccessibleName("Complete assessment")
        self.complete_button.setToolTip("Complete and lock the record (Ctrl+Enter)")
        self.complete_button.setProperty("variant", "primary")
        self.complete_button.clicked.connect(self.complete)
        self.back_button = QPushButton("← Back")
        self.back_button.setObjectName("wizard.back")
        self.back_button.setToolTip("Previous step (Alt+B or Alt+Left)")
        self.back_button.setAccessibleName("Back")
        self.back_button.clicked.connect(self.go_back)
        self.save_button = QPushButton("Save draft")
        self.save_button.setObjectName("wizard.save_draft")
        self.save_button.setToolTip(
            "Save the draft now (Ctrl+S). Drafts are also saved automatically."
        )
        self.save_button.setAccessibleName("Save draft")
        self.save_button.clicked.connect(self._save_clicked)
        for button in (self.next_button, self.complete_button, self.back_button, self.save_button):
            button.setAutoDefault(True)  # Enter on a focused button presses it
        self._save_status = ElidedLabel()
        self._save_status.setObjectName("wizard.save_status")
        foot.addWidget(self.back_button)
        foot.addWidget(self.save_button)
        foot.addWidget(self._save_status, 1)
        foot.addWidget(self.next_button)
        foot.addWidget(self.complete_button)
        QWidget.setTabOrder(self.next_button, self.complete_button)
        QWidget.setTabOrder(self.complete_button, self.back_button)
        QWidget.setTabOrder(self.back_button, self.save_button)

        # step list (left) and guidance (right) come after the buttons in tab order
        self._steps = QListWidget(view)
        self._steps.setObjectName("wizard.steps")
        self._steps.setAccessibleName("Steps of the assessment")
        self._steps.setIconSize(QSize(24, 24))
        self._steps.setWordWrap(True)
        self._steps.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        for number, step in enumerate(form.steps, start=1):
            item = QListWidgetItem(step.title)
            item.setData(Qt.ItemDataRole.UserRole, step.id)
            item.setIcon(step_icon("todo", number))
            self._steps.addItem(item)
        summary_item = QListWidgetItem("Check and complete")
        summary_item.setData(Qt.ItemDataRole.UserRole, SUMMARY)
        summary_item.setIcon(step_icon("summary", 0))
        self._steps.addItem(summary_item)
        self._steps.itemClicked.connect(self._step_clicked)
        self._steps.itemActivated.connect(self._step_clicked)

        self._guidance = GuidancePanel(view)

        body.addWidget(self._steps)
        body.addWidget(centre, 1)
        body.addWidget(self._guidance)
        self._view = view
        self._fit_panels()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self._fit_panels()
        self._fit_banners()

    def _fit_banners(self) -> None:
        """Prompts use at most a third of the wizard's height (they scroll beyond it)."""
        if self._view is not None and isinstance(self._banners_widget, BannerArea):
            self._banners_widget.fit(self.height() // 3)

    @property
    def compact(self) -> bool:
        """True on a small screen: the guidance is shown on request (Alt+G) instead of always."""
        return self.width() < COMPACT_BELOW

    def _fit_panels(self) -> None:
        """Keep the form readable on a 1024-pixel screen: a narrower step list, and the
        guidance either beside the form (wide) or in place of the step list (compact, Alt+G)."""
        if self._view is None:
            return
        compact = self.compact
        wanted = self.guidance_button.isChecked()
        self.guidance_button.setVisible(compact)
        # Minimum widths stay small whatever the mode, so the window is never pushed wider
        # before the first resize has told us how much room there is.
        self._steps.setMinimumWidth(COMPACT_STEPS_WIDTH)
        self._steps.setMaximumWidth(COMPACT_STEPS_WIDTH if compact else STEPS_WIDTH)
        self._guidance.setMinimumWidth(0)
        self._guidance.setVisible(not compact or wanted)
        self._steps.setVisible(not (compact and wanted))

    def _wire(self, field_id: str, row: FieldRow) -> None:
        widget = row.input
        widget.changed.connect(lambda fid=field_id: self._on_changed(fid))  # type: ignore[attr-defined]
        widget.committed.connect(lambda fid=field_id: self._on_committed(fid))  # type: ignore[attr-defined]
        self._owner[id(widget)] = field_id
        self._watch_enter(widget)

    @staticmethod
    def _ack_step(form: Form) -> str | None:
        if form.has_field(ACK_FIELD):
            return form.step_of(ACK_FIELD).id
        for step in form.steps:
            for fld in step.fields:
                if fld.show_when is not None and fld.show_when.op == "prior_records":
                    return step.id
        return None

    # ----- state -----------------------------------------------------------------------------------
    def _setup(
        self, form: Form, answers: dict[str, Any], record_id: str | None, step: str | None
    ) -> None:
        if self._form is None or self._form.key != form.key or self._view is None:
            self._build_view(form)
        self._form = form
        self._record_id = record_id
        self._left = set()
        self._editing = set()
        self._reviewed = False
        self._finished = False
        self._service_errors = []
        self._prior_key = None
        self._prior = []
        self._carry_lines = []
        self._carry_step = None
        self.problem = None
        self._loading = True
        try:
            for fid, row in self._rows.items():
                row.input.set_value(answers.get(fid))  # type: ignore[attr-defined]
        finally:
            self._loading = False
        # Keep every stored answer, including any for fields this form does not show.
        self._answers = {k: v for k, v in answers.items() if not is_empty(v)}
        for fid, row in self._rows.items():
            value = row.input.get_value()  # type: ignore[attr-defined]
            if is_empty(value):
                self._answers.pop(fid, None)
            else:
                self._answers[fid] = value
        self._committed = {fid for fid in self._rows if fid in self._answers}
        self._dirty = False
        self._current = None
        self._evaluate()
        # A reopened draft keeps what was stored: a date already on screen and left empty stays so.
        shown = set(self._evaluation.visible_fields) if self._evaluation else set()
        self._defaulted = {f for f in TODAY_DEFAULTS if record_id is not None and f in shown}
        if record_id is not None and "decision" in self._answers:
            # a reopened draft keeps what was stored
            self._defaulted.update(("recipient_type", "included_items"))
        visible = list(self._evaluation.visible_steps) if self._evaluation else [form.steps[0].id]
        if step == SUMMARY:
            target = SUMMARY
        elif step in visible:
            target = step
        else:
            target = visible[0] if visible else form.steps[0].id
        if target != SUMMARY and target in visible:
            self._left = set(visible[: visible.index(target)])
        elif target == SUMMARY:
            self._left = set(visible)
        if self._view is not None:
            self._screens.setCurrentWidget(self._view)
        self._set_save_status(
            f"Draft {record_id} opened"
            if record_id
            else "Not saved yet — your draft is saved automatically once you start."
        )
        self._go(target, leaving=False, save=False)
        self._timer.start()

    def _save_before_switching(self) -> None:
        if self._form is not None and not self._finished and self._dirty:
            self.save_now(autosave=True)

    def _order(self) -> list[str]:
        if self._evaluation is None:
            return []
        return [*self._evaluation.visible_steps, SUMMARY]

    def _step_to_save(self) -> str | None:
        if self._current == SUMMARY:
            order = self._order()
            return order[-2] if len(order) >= 2 else None
        return self._current

    def _go(
        self, target: str, *, leaving: bool = True, save: bool = True, focus: bool = True
    ) -> None:
        if self._form is None:
            return
        previous = self._current
        if previous == target and self._stack.currentWidget() is not None and previous is not None:
            return
        if leaving and previous is not None and previous != SUMMARY:
            self._left.add(previous)
        self._current = target
        if target == SUMMARY:
            self._reviewed = True
            self._stack.setCurrentWidget(self._summary)
            self._guidance.show_step(
                None,
                "Check the outcome and the statement before you complete. Completing freezes the "
                "answers with the form version they were made with; later facts are added as "
                "addenda, and nothing is deleted.\n\nIf a referral letter is needed it is shown "
                "below the statement exactly as it will be sent; you sign it when you complete.",
            )
        else:
            page = self._pages[target]
            self._stack.setCurrentWidget(page)
            page.verticalScrollBar().setValue(0)
            self._guidance.show_step(page.step)
        self._refresh()
        if save and previous is not None and previous != target:
            self._dirty = True
            self.save_now(autosave=True)
        if target == SUMMARY:
            self._update_letter_preview()
        if focus:
            self._focus_first()

    def _update_letter_preview(self) -> None:
        """On the check page, show the letter that completing will sign (marked as a draft)."""
        ev = self._evaluation
        if ev is None:
            return
        if self._all_errors(ev):
            self._summary.show_letter(
                None, "The letter appears here once every item above has been answered."
            )
            return
        if not ev.outcome.letter_required:
            self._summary.show_letter(None, "")
            return
        if not self.save_now(autosave=True) or self._record_id is None:
            return
        try:
            pdf = self._session.letters.preview_letter(self._record_id)
        except (ValidationFailed, StoreError) as exc:
            self._summary.show_letter(None, str(exc))
            return
        except Exception:
            log.exception("previewing the letter failed")
            self._summary.show_letter(None, UNEXPECTED)
            return
        self._summary.show_letter(
            pdf,
            "This is the letter exactly as it will be sent, marked “Draft – not signed”. When you "
            "complete the assessment you are asked for your password and sign this letter.",
        )

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt API
        """When the page appears (after unlock or navigation) put the cursor in the first field,
        so a GP can start typing without reaching for the mouse."""
        super().showEvent(event)
        focused = QApplication.focusWidget()
        if focused is None or not self.isAncestorOf(focused):
            QTimer.singleShot(0, self._focus_first)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        """Enter in a one-line field, a choice or a box moves on: to the next question of the
        step that is required and still unanswered, or, when there is none, to the next step,
        as in a wizard dialog. On an option nobody has chosen yet, Enter chooses it first (as
        Space would). If the answer just given is wrong its message shows and the focus stays.
        Multi-line text and tables are not watched: Enter is theirs."""
        if (
            isinstance(event, QKeyEvent)
            and event.type() == QEvent.Type.KeyPress
            and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
            and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
            and isinstance(watched, QWidget)
        ):
            fid = self._field_of(watched)
            if fid is None or self._current in (None, SUMMARY):
                return False
            if isinstance(watched, QRadioButton) and not watched.isChecked():
                watched.click()
            self._on_committed(fid)
            if not self._rows[fid].error.isHidden():
                return True
            target = self.enter_target(fid)
            if target is not None:
                self._rows[target].input.focus_input()  # type: ignore[attr-defined]
            else:
                self.go_next()
            return True
        return super().eventFilter(watched, event)

    def _watch_enter(self, widget: QWidget) -> None:
        targets = [widget, *widget.findChildren(QAbstractButton), *widget.findChildren(QComboBox)]
        for target in targets:
            if isinstance(target, QPushButton):
                continue  # Enter presses a focused button ("Add person")
            if isinstance(target, QLineEdit | QAbstractButton | QComboBox):
                target.installEventFilter(self)

    def _focus_first(self) -> None:
        if self._current == SUMMARY:
            if self._summary.error_list.count():
                self._summary.error_list.setFocus(Qt.FocusReason.OtherFocusReason)
                self._summary.error_list.setCurrentRow(0)
            elif self.complete_button.isEnabled():
                self.complete_button.setFocus(Qt.FocusReason.OtherFocusReason)
            return
        page = self._pages.get(self._current or "")
        if page is None:
            return
        for fid, row in page.rows.items():
            if not row.isHidden() and self._evaluation and fid in self._evaluation.visible_fields:
                row.input.focus_input()  # type: ignore[attr-defined]
                return

    # ----- reacting to input ------------------------------------------------------------------------
    def _on_changed(self, field_id: str) -> None:
        if self._loading or self._finished or field_id not in self._rows:
            return
        value = self._rows[field_id].input.get_value()  # type: ignore[attr-defined]
        if is_empty(value):
            self._answers.pop(field_id, None)
        else:
            self._answers[field_id] = value
        self._editing.add(field_id)
        self._hide_drafts_notice()
        self._service_errors = [e for e in self._service_errors if e.field != field_id]
        self._dirty = True
        if field_id in self._defaults:
            self._show_default_notes()
        self._refresh()
        self._fill_today_defaults()

    def _fill_today_defaults(self) -> None:
        """Start the advice date as today, and the recipient from the decision (once each)."""
        ev = self._evaluation
        if ev is None:
            return
        for fid in TODAY_DEFAULTS:
            if fid in self._rows and fid in ev.visible_fields and fid not in self._defaulted:
                self._defaulted.add(fid)
                if fid not in self._answers:
                    self._rows[fid].input.set_value(today(self._session.clock).isoformat())  # type: ignore[attr-defined]
        recipient = RECIPIENT_FROM_DECISION.get(str(self._answers.get("decision")))
        if (
            recipient is not None
            and "recipient_type" in self._rows
            and "recipient_type" not in self._defaulted
            and "recipient_type" not in self._answers
        ):
            self._defaulted.add("recipient_type")
            self._rows["recipient_type"].input.set_value(recipient)  # type: ignore[attr-defined]
        if (
            self._answers.get("decision") in R8_DECISIONS
            and "included_items" in self._rows
            and "included_items" in ev.visible_fields
            and "included_items" not in self._defaulted
            and "included_items" not in self._answers
        ):
            self._defaulted.add("included_items")
            self._rows["included_items"].input.set_value(list(R8_INCLUDED))  # type: ignore[attr-defined]

    def _on_committed(self, field_id: str) -> None:
        if self._loading or self._finished:
            return
        self._editing.discard(field_id)
        self._committed.add(field_id)
        self._refresh(evaluate=False)

    def _field_of(self, widget: QWidget | None) -> str | None:
        while widget is not None:
            fid = self._owner.get(id(widget))
            if fid is not None and fid in self._rows and self._rows[fid].input is widget:
                return fid
            widget = widget.parentWidget()
        return None

    def _focus_changed(self, old: QWidget | None, new: QWidget | None) -> None:
        try:
            if self._form is None or old is None:
                return
            left = self._field_of(old)
            if left is not None and left != self._field_of(new):
                self._on_committed(left)
        except RuntimeError:  # a widget was being destroyed
            return

    def _step_clicked(self, item: QListWidgetItem) -> None:
        target = item.data(Qt.ItemDataRole.UserRole)
        if isinstance(target, str):
            self._go(target)

    def _toggle_guidance(self) -> None:
        if self._view is not None:
            if self.compact:
                self.guidance_button.toggle()
            else:
                self._guidance.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def _save_clicked(self) -> None:
        if self._form is None or self._finished:
            return
        if self._record_id is None and not self._answers:
            self._set_save_status("Nothing to save yet.")
            return
        self.save_now()

    def _complete_shortcut(self) -> None:
        if self._current == SUMMARY and self.complete_button.isEnabled():
            self.complete()

    # ----- evaluation and display ---------------------------------------------------------------------
    def _identity_key(self) -> tuple[Any, ...]:
        a = self._answers
        nhs = a.get("nhs_number")
        family = a.get("child_family_name")
        return (
            normalise(nhs) if isinstance(nhs, str) else None,
            family.strip().lower() if isinstance(family, str) else None,
            a.get("date_of_birth") if isinstance(a.get("date_of_birth"), str) else None,
        )

    def _evaluate(self) -> None:
        form = self._form
        if form is None:
            return
        key = self._identity_key()
        try:
            if key != self._prior_key and not self._offline:
                # (Offline, the earlier records are looked up again once the server is back.)
                self._prior = list(
                    self._session.assessments.prior_records(self._answers, self._record_id)
                )
                self._prior_key = key
            self._evaluation = self._session.assessments.evaluate(
                form, self._answers, exclude=self._record_id, prior=self._prior
            )
        except StoreError as exc:
            self._set_save_status(str(exc), failed=True)
        except Exception:
            log.exception("evaluating the answers failed")
            self._set_save_status(UNEXPECTED, failed=True)

    def _refresh(self, *, evaluate: bool = True) -> None:
        if self._form is None or self._view is None:
            return
        if evaluate:
            self._evaluate()
        ev = self._evaluation
        if ev is None:
            return
        for fid, row in self._rows.items():
            row.setHidden(fid not in ev.visible_fields)
        for page in self._pages.values():
            page.update_groups()
        if self._current not in (*ev.visible_steps, SUMMARY, None):
            # the current step has just been hidden by an earlier answer: step back
            order = [s.id for s in self._form.steps]
            index = order.index(self._current) if self._current in order else 0
            fallback = next(
                (s for s in reversed(order[:index]) if s in ev.visible_steps), ev.visible_steps[0]
            )
            self._current = None
            self._go(fallback, leaving=False, save=False)
            return
        self._update_errors(ev)
        self._update_steps(ev)
        self._update_banners(ev)
        if self._current == SUMMARY:  # rebuilt only while it is on screen
            self._summary.show_evaluation(self._form, self._answers, ev, self._service_errors)
        self._update_buttons(ev)
        self._update_header()

    def _all_errors(self, ev: Evaluation) -> list[FieldError]:
        errors = list(ev.errors)
        known = {(e.field, e.message) for e in errors}
        errors += [e for e in self._service_errors if (e.field, e.message) not in known]
        return errors

    def _shown(self, error: FieldError) -> bool:
        if error.field in self._editing:
            return False
        if self._reviewed or error.step in self._left:
            return True
        if error.kind == "required":
            return False
        return error.field in self._committed

    def _update_errors(self, ev: Evaluation) -> None:
        messages: dict[str, list[str]] = {}
        for error in self._all_errors(ev):
            if error.field in self._rows and self._shown(error):
                messages.setdefault(error.field, []).append(error.message)
        for fid, row in self._rows.items():
            row.set_errors(messages.get(fid, []))

    def _update_steps(self, ev: Evaluation) -> None:
        visible = list(ev.visible_steps)
        errors = self._all_errors(ev)
        self._steps.blockSignals(True)
        number = 0
        for index in range(self._steps.count()):
            item = self._steps.item(index)
            sid = item.data(Qt.ItemDataRole.UserRole)
            if sid == SUMMARY:
                item.setHidden(False)
                count = len(errors)
                item.setText(
                    "Check and complete"
                    + (f"  ({count} to fix)" if count and self._reviewed else "")
                )
                font = item.font()
                font.setBold(self._current == SUMMARY)
                item.setFont(font)
                if self._current == SUMMARY:
                    self._steps.setCurrentItem(item)
                continue
            hidden = sid not in visible
            item.setHidden(hidden)
            if hidden:
                continue
            number += 1
            step_errors = [e for e in errors if e.step == sid]
            shown = any(self._shown(e) for e in step_errors)
            visited = sid in self._left or self._reviewed
            title = self._form.step(sid).title if self._form else sid
            if shown:
                state, suffix = "error", " — needs attention"
            elif visited and not step_errors:
                state, suffix = "done", " — done"
            else:
                state, suffix = "todo", ""
            if sid == self._current and state != "error":
                state = "current"
            if (
                item.data(Qt.ItemDataRole.UserRole + 1) != state
                or item.data(Qt.ItemDataRole.UserRole + 2) != number
            ):
                item.setIcon(step_icon(state, number))
                item.setData(Qt.ItemDataRole.UserRole + 2, number)
            item.setText(title)
            item.setToolTip(title + suffix)
            item.setData(Qt.ItemDataRole.AccessibleTextRole, f"Step {number}: {title}{suffix}")
            item.setData(Qt.ItemDataRole.UserRole + 1, state)
            font = item.font()
            font.setBold(sid == self._current)
            item.setFont(font)
            if sid == self._current:
                self._steps.setCurrentItem(item)
        self._steps.blockSignals(False)
        total = len(visible)
        for position, sid in enumerate(visible, start=1):
            self._pages[sid].set_position(position, total + 1)
        self._summary.step_number.setText(f"Step {total + 1} of {total + 1}")

    def step_state(self, step_id: str) -> str | None:
        """'current', 'done', 'error' or 'todo' as the step list shows it (None if hidden)."""
        for index in range(self._steps.count()):
            item = self._steps.item(index)
            if item.data(Qt.ItemDataRole.UserRole) == step_id:
                return None if item.isHidden() else item.data(Qt.ItemDataRole.UserRole + 1)
        return None

    def _update_banners(self, ev: Evaluation) -> None:
        """Prompts (critical, warning, info) and the chronology, above the fields.

        Banners are kept and updated in place (not rebuilt on every keystroke). On the summary
        they are hidden: it lists the prompts itself.
        """
        form = self._form
        if form is None:
            return
        prior = self._prior
        if self._chronology is not None:
            self._chronology.show_records(form, prior)
        wanted: list[tuple[str, str, str, str]] = []  # name, severity, title, body
        order = {"critical": 0, "warning": 1, "info": 2}
        for prompt in sorted(ev.prompts, key=lambda p: order.get(p.severity, 3)):
            if prompt.token == "prior_concerns" and prior:
                continue  # shown as the chronology banner, with the records themselves
            title, body = split_message(prompt.message)
            wanted.append((f"wizard.prompt.{prompt.token}", prompt.severity, title, body))
        if self._carry_lines and self._current == self._carry_step:
            wanted.insert(
                0,
                (
                    "wizard.carried_notice",
                    "warning",
                    f"This draft was started with form version {form.version - 1} and has been "
                    f"moved to version {form.version}.",
                    "Check these answers:\n" + "\n".join(f"• {line}" for line in self._carry_lines),
                ),
            )
        ack_step = self._ack_step(form)
        if prior and self._current != ack_step:
            title, body = chronology_summary(form, prior)
            acknowledged = self._answers.get(ACK_FIELD) is True
            if acknowledged:
                body += " You have confirmed you have read them."
            wanted.append(
                ("wizard.chronology_banner", "info" if acknowledged else "warning", title, body)
            )
        if self._current == SUMMARY:
            self._banners_widget.hide()
            return

        names = [w[0] for w in wanted]
        for name, banner in self._banners.items():  # kept (hidden) for when they apply again
            if name not in names:
                banner.hide()
        offset = 1 if self._drafts_notice is not None else 0  # the notice stays on top
        for index, (name, severity, title, body) in enumerate(wanted, start=offset):
            existing = self._banners.get(name)
            if existing is None:
                banner = Banner(severity, title, body, name=name)
                if name == "wizard.chronology_banner" and ack_step is not None:
                    button = banner.add_action("Read them", "wizard.chronology_open")
                    button.clicked.connect(self._open_chronology)
                self._banners[name] = banner
            else:
                banner = existing
                banner.update_text(severity, title, body)
            if self._banner_layout.indexOf(banner) != index:
                self._banner_layout.removeWidget(banner)
                self._banner_layout.insertWidget(index, banner)
            banner.show()
        notice = self._drafts_notice is not None and not self._drafts_notice.isHidden()
        self._banners_widget.setVisible(bool(wanted) or notice)
        self._fit_banners()

    def _open_chronology(self) -> None:
        if ACK_FIELD in self._rows:
            self.focus_field(ACK_FIELD)
        elif self._form is not None and (step := self._ack_step(self._form)) is not None:
            self._go(step)

    def banner_texts(self) -> list[str]:
        """The text of every banner on screen (prompts and chronology), for tests and tools."""
        out: list[str] = []
        if not self._banners_widget.isVisibleTo(self):
            return out
        for index in range(self._banner_layout.count()):
            item = self._banner_layout.itemAt(index)
            widget = item.widget() if item is not None else None
            if isinstance(widget, Banner) and not widget.isHidden():
                out.append(widget.text())
        return out

    def _update_buttons(self, ev: Evaluation) -> None:
        on_summary = self._current == SUMMARY
        order = self._order()
        self.back_button.setEnabled(bool(order) and self._current != order[0])
        self.next_button.setVisible(not on_summary)
        self.complete_button.setVisible(on_summary)
        errors = self._all_errors(ev)
        self.complete_button.setEnabled(on_summary and not errors)
        if not on_summary and order and self._current in order:
            is_last = order.index(self._current) == len(order) - 2
            self.next_button.setText(LAST_NEXT_TEXT if is_last else NEXT_TEXT)

    def _update_header(self) -> None:
        if self._form is None or self._view is None:
            return
        a = self._evaluation.cleaned if self._evaluation else {}
        name = " ".join(
            str(a.get(k) or self._answers.get(k) or "").strip()
            for k in ("child_given_name", "child_family_name")
        ).strip()
        parts = [name or "New assessment"]
        nhs = self._answers.get("nhs_number")
        if isinstance(nhs, str) and nhs.strip():
            parts.append(f"NHS {format_334(nhs)}")
        dob = a.get("date_of_birth")
        if isinstance(dob, str):
            age = self._evaluation.age if self._evaluation else None
            parts.append(f"born {fmt_date(dob)}" + (f" (age {age})" if age is not None else ""))
        self._child_label.setText("  ·  ".join(parts))
        ref = f"Draft {self._record_id}" if self._record_id else "Not saved yet"
        self._record_label.setText(f"{ref}  ·  {self._session.user.full_name}")

    # ----- the server unreachable ----------------------------------------------------------------
    @property
    def offline_text(self) -> str:
        """The offline banner's text when it is shown, else "" (for tests and tools)."""
        if not self._offline or self._offline_banner is None:
            return ""
        return self._offline_banner.text()

    def _set_offline(self, message: str | None) -> None:
        """Show (message) or clear (None) the offline banner; the retry worker runs while shown."""
        self._offline = message is not None
        if self._view is not None:
            self._offline_area.setVisible(self._offline)
        if self._offline:
            if not self._retry_timer.isActive():
                self._retry_timer.start()
        else:
            self._retry_timer.stop()

    def retry_offline(self) -> None:
        """Try to save the cached drafts, in the thread pool (never on the GUI thread: a
        connection to an unreachable server may take seconds to fail)."""
        if not self._offline or self._offline_task is not None or not self._session.is_open:
            return
        task = Task(self._session, lambda worker, _context: worker.offline.flush())
        queued = Qt.ConnectionType.QueuedConnection
        task.signals.succeeded.connect(self._offline_flushed, queued)
        task.signals.done.connect(self._offline_task_done, queued)
        self._offline_task = task
        QThreadPool.globalInstance().start(task)

    def _offline_task_done(self, task: Task) -> None:
        if task is self._offline_task:
            self._offline_task = None  # a failure (still unreachable) keeps the banner

    def _offline_flushed(self, task: Task, report: FlushReport) -> None:
        if task is not self._offline_task or report.unreachable:
            return
        self._set_offline(None)
        when = self._session.clock.now().astimezone().strftime("%H:%M:%S")
        if report.refused:
            name, why = report.refused[0]
            self._set_save_status(f"Not saved to the server: {why}", failed=True)
            dialogs.error(self, "A draft kept on this computer was not saved", why)
        else:
            self._set_save_status(f"Saved to the practice server at {when}")

    def _set_save_status(self, text: str, *, failed: bool = False) -> None:
        if self._view is None:
            return
        self._save_status.setText(text)
        set_prop(self._save_status, "failed", failed)

    # ----- problem and done screens -------------------------------------------------------------------
    def _show_form_problem(self, exc: FormError) -> None:
        self._show_problem(
            "The assessment form cannot be used",
            "gpshare will not start an assessment with a damaged or missing form file.",
            details=(
                f"<p><b>File:</b> {_esc(exc.file)}<br>"
                + (f"<b>Field:</b> {_esc(exc.field)}<br>" if exc.field else "")
                + f"<b>Problem:</b> {_esc(exc.problem)}</p>"
                "<p>Nothing has been saved. Ask your practice administrator to reinstall gpshare "
                "or restore the <i>forms</i> folder, then try again.</p>"
            ),
            full=str(exc),
        )

    def _show_problem(self, title: str, message: str, *, details: str = "", full: str = "") -> None:
        self._timer.stop()
        self.problem = full or message
        self._message_title.setText(title)
        self._message_banner.update_text("critical", message)
        self._message_details.setText(details)
        self._message_details.setVisible(bool(details))
        self._new_button.setVisible(
            self._form is not None or title != "The assessment form cannot be used"
        )
        self._screens.setCurrentWidget(self._message_page)

    def _show_done(self, record: Any) -> None:
        outcome = record.outcome or {}
        from gpshare.ui.wizard.pages import PATHWAY_LABELS
        from gpshare.ui.wizard.summary import CONSENT_BASIS_LABELS

        self.problem = None
        self._message_title.setText("Assessment completed")
        self._message_banner.update_text(
            "success", "Assessment completed", f"Reference {record.id}"
        )
        self._message_banner.label.setText(
            f"<b>The assessment for {_esc(record.child.display_name)} is complete.</b><br>"
            f"Reference <b>{_esc(record.id)}</b> — quote it in any correspondence."
        )
        rows = [
            f"<b>Pathway:</b> {_esc(PATHWAY_LABELS.get(str(outcome.get('pathway')), str(outcome.get('pathway'))))}",
            f"<b>Consent basis:</b> {_esc(CONSENT_BASIS_LABELS.get(str(outcome.get('consent_basis')), str(outcome.get('consent_basis'))))}",
        ]
        if outcome.get("letter_required"):
            rows.append("<b>Next:</b> preview, sign and send the referral letter.")
        else:
            rows.append("<b>No letter is needed.</b> The review date is in your records.")
        self._message_details.setText(
            "<p>" + "<br>".join(rows) + "</p><p>The record can no longer be "
            "changed. Add later facts as an addendum from My records.</p>"
        )
        self._message_details.show()
        self._new_button.show()
        self._screens.setCurrentWidget(self._message_page)
        self._new_button.setFocus(Qt.FocusReason.OtherFocusReason)


def _esc(text: Any) -> str:
    from html import escape

    return escape(str(text))


def _as_field_error(item: Any) -> FieldError | None:
    """ValidationFailed.errors holds FieldError objects (or dicts from other callers)."""
    if isinstance(item, FieldError):
        return item
    if isinstance(item, Mapping):
        return FieldError(
            str(item.get("field", "")),
            str(item.get("step", "")),
            str(item.get("message", "")),
            str(item.get("kind", "invalid")),
        )
    return None
