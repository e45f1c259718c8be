"""The desktop application: QApplication, main window, navigation, lock and auto-lock.

Start-up shows the unlock screen before anything heavy is imported (services, reportlab,
pyHanko, QtPdf are imported after the window is on screen).

Plugging in pages
-----------------
Other UI modules add pages with :meth:`MainWindow.register_page`::

    def install(window: MainWindow) -> None:
        window.register_page("my_records", lambda session, window: RecordsView(session, window))

A page factory receives the open :class:`gpshare.services.Session` and the window and returns
a ``QWidget``. Pages are created lazily when first shown and **destroyed on every lock**; they
are created again (by the factory) after unlock, before :attr:`MainWindow.unlocked` is
emitted. Modules that need to carry something across a lock (e.g. the wizard's draft id and
step — never patient data) keep it in :attr:`MainWindow.lock_state`, which is cleared when a
different user unlocks. Save drafts on :attr:`MainWindow.about_to_lock` (the session is still
open then). ``run_app`` calls ``install(window)`` of each module in :data:`PAGE_MODULES` that
exists.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication, QMainWindow, QWidget

from gpshare import __version__
from gpshare.errors import StoreError

# Imported where they are used, after the first paint (DESIGN §8 start-up budget): the `Qt`
# namespace (~15 ms to build), each Qt class's enums (made when the class is first named),
# dataclasses (gpshare.clock), the dialogs and widgets modules. Only the unlock screen
# (gpshare.ui.unlock, which keeps to the same rules) is needed for the first paint.
if TYPE_CHECKING:
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QAction, QCloseEvent
    from PySide6.QtWidgets import QPushButton

    from gpshare.clock import Clock
    from gpshare.services import Session

log = logging.getLogger(__name__)

PageFactory = Callable[["Session", "MainWindow"], QWidget]

DEFAULT_AUTO_LOCK_MINUTES = 5
IDLE_CHECK_INTERVAL_MS = 5_000
# UI modules whose `install(window)` registers their pages (imported lazily after unlock).
PAGE_MODULES = (
    "gpshare.ui.wizard",
    "gpshare.ui.my_records",
    "gpshare.ui.records_view",
    "gpshare.ui.audit_view",
    "gpshare.ui.letter_view",
)


class NavEntry(NamedTuple):
    """One navigation entry and the roles that see it (DESIGN §2; services enforce access)."""

    key: str
    label: str
    roles: tuple[str, ...]
    description: str


NAV_ENTRIES: tuple[NavEntry, ...] = (
    NavEntry(
        "new_assessment",
        "New assessment",
        ("clinician", "lead"),
        "Start a new information-sharing assessment for a child.",
    ),
    NavEntry(
        "my_records",
        "My records",
        ("clinician", "lead"),
        "Your drafts and completed assessments, letters and follow-ups.",
    ),
    NavEntry(
        "lead_workspace",
        "Lead workspace",
        ("lead",),
        "All records, follow-ups due, the dashboard and the audit log.",
    ),
    NavEntry("admin", "Admin", ("admin",), "Users, backups and practice settings."),
)


# Where each role lands after signing in (their work first); others land on their first entry.
LANDING = {"lead": "lead_workspace"}


def nav_entries_for(role: str) -> list[NavEntry]:
    """The navigation entries a role sees."""
    return [entry for entry in NAV_ENTRIES if role in entry.roles]


def _admin_page(session: Session, window: MainWindow) -> QWidget:
    from gpshare.ui.admin_view import AdminView

    view = AdminView(session)
    view.restore_requested.connect(window.restore_backup)
    view.undo_upgrade_requested.connect(window.restore_backup)
    view.settings_changed.connect(window.refresh_settings)
    view.breakglass_done.connect(window.breakglass_banner.refresh)
    if view.server_tab is not None:  # a restored practice server: this session is stale
        view.server_tab.restored.connect(
            lambda text: window.lock(reason="server_restored", notice=text)
        )
    return view


class _ActivityFilter(QObject):
    """Application-wide: any key, click, wheel or mouse movement counts as activity."""

    def __init__(self, on_activity: Callable[[], None], parent: QObject) -> None:
        # QEvent is imported here, at the first unlock: its type (and its 170-member Type
        # enum) cost ~7 ms before the first paint otherwise.
        from PySide6.QtCore import QEvent

        super().__init__(parent)
        self._on_activity = on_activity
        self._TYPES = frozenset(
            {
                QEvent.Type.KeyPress,
                QEvent.Type.MouseButtonPress,
                QEvent.Type.MouseMove,
                QEvent.Type.Wheel,
                QEvent.Type.TouchBegin,
                QEvent.Type.ShortcutOverride,
            }
        )

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if event.type() in self._TYPES:
            self._on_activity()
        return False


class PlaceholderPage(QWidget):
    """Stands in for a page another part of gpshare has not plugged in yet."""

    def __init__(self, entry_label: str, description: str, parent: QWidget | None = None) -> None:
        from PySide6.QtWidgets import QLabel, QVBoxLayout

        super().__init__(parent)
        self.setProperty("page", True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(32, 28, 32, 28)
        heading = QLabel(entry_label)
        heading.setProperty("heading", "h1")
        layout.addWidget(heading)
        text = QLabel(description)
        text.setProperty("role", "hint")
        text.setWordWrap(True)
        layout.addWidget(text)
        layout.addSpacing(12)
        note = QLabel("This part of gpshare is not available in this build yet.")
        note.setProperty("role", "info")
        note.setWordWrap(True)
        layout.addWidget(note)
        layout.addStretch(1)


class ProblemPage(QWidget):
    """Shown when a page could not be opened; the message is plain English."""

    def __init__(self, title: str, message: str, parent: QWidget | None = None) -> None:
        from PySide6.QtWidgets import QLabel, QVBoxLayout

        super().__init__(parent)
        self.setProperty("page", True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(32, 28, 32, 28)
        heading = QLabel(title)
        heading.setProperty("heading", "h1")
        layout.addWidget(heading)
        box = QLabel(message)
        box.setObjectName("page.problem")
        box.setProperty("role", "error")
        box.setWordWrap(True)
        layout.addWidget(box)
        layout.addStretch(1)


class MainWindow(QMainWindow):
    """The one window: unlock screen while locked, navigation + pages while unlocked."""

    about_to_lock = Signal()  # the session is still open: save drafts now
    unlocked = Signal(object)  # gpshare.services.Session; pages already recreated
    locked = Signal()  # the session is closed and every page destroyed
    page_changed = Signal(str)  # navigation key of the page now shown

    def __init__(
        self,
        clock: Clock | None = None,
        vault_folder: Path | None = None,
        *,
        install_pages: bool = False,
        defer_build: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        """`defer_build`: only the unlock screen and the menu bar's titles are made now, so
        the unlock form can be painted at once; :meth:`finish_build` adds the workspace, the
        menus' actions and the status bar later, in the same window (the start-up budget,
        DESIGN §8)."""
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self._clock = clock
        self._session: Session | None = None
        self._factories: dict[str, PageFactory] = {"admin": _admin_page}
        self._pages: dict[str, QWidget] = {}
        self._nav_buttons: dict[str, QPushButton] = {}
        self._current_key: str | None = None
        self._previous_key: str | None = None
        self._previous_user: str | None = None
        self._install_pages = install_pages
        self._pages_installed = False
        self._auto_lock = timedelta(minutes=DEFAULT_AUTO_LOCK_MINUTES)
        self.lock_state: dict[str, Any] = {}
        self._vault_folder = vault_folder
        # Made and installed when a session opens (start_session), not before the first
        # paint: a Python filter on every event of the start-up cost ~30 ms (budget 1.5×).
        self._activity_filter: _ActivityFilter | None = None
        self._built = False
        self.setWindowTitle("gpshare")
        self.resize(1100, 720)
        self._build_unlock_screen()
        if not defer_build:
            self.finish_build()

    def _build_unlock_screen(self) -> None:
        from PySide6.QtWidgets import QStackedWidget

        from gpshare.ui.unlock import UnlockWidget

        # Parents first: the form is styled once, in its final place (see UnlockWidget).
        self._screens = QStackedWidget()
        self._screens.setObjectName("main.screens")
        self.setCentralWidget(self._screens)
        self.unlock_widget = UnlockWidget(self._clock, self._vault_folder, self._screens)
        self.unlock_widget.unlocked.connect(self.start_session)
        self._screens.addWidget(self.unlock_widget)
        # The menus' titles now, their actions in finish_build: a menu bar added after the
        # first paint would push the form down.
        self._file_menu = self.menuBar().addMenu("&File")
        self._help_menu = self.menuBar().addMenu("&Help")
        self.unlock_widget.focus_first_empty()

    @property
    def is_built(self) -> bool:
        """False while only the unlock screen of a deferred start-up is built."""
        return self._built

    def finish_build(self) -> None:
        """Make the workspace, the menus' actions, the status bar and the idle timer (once)."""
        if self._built:
            return
        self._built = True
        from gpshare.clock import SystemClock

        self.clock: Clock = self._clock or SystemClock()
        self._last_activity = self.clock.now()
        self._workspace = self._build_workspace()
        self._screens.addWidget(self._workspace)
        self._build_actions()
        self._build_status_bar()

        self._idle_timer = QTimer(self)
        self._idle_timer.setInterval(IDLE_CHECK_INTERVAL_MS)
        self._idle_timer.timeout.connect(self.check_idle)
        self._update_actions()
        self.statusBar().hide()

    # ----- construction ---------------------------------------------------------------------
    def _build_workspace(self) -> QWidget:
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import (
            QButtonGroup,
            QFrame,
            QHBoxLayout,
            QLabel,
            QPushButton,
            QStackedWidget,
            QVBoxLayout,
        )

        from gpshare.ui.widgets import ElidedLabel

        workspace = QWidget()
        workspace.setObjectName("main.workspace")
        outer = QVBoxLayout(workspace)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)

        top = QFrame()
        top.setObjectName("topBar")
        top_layout = QHBoxLayout(top)
        top_layout.setContentsMargins(16, 10, 16, 10)
        top_layout.setSpacing(14)
        brand = QLabel("gpshare")
        brand.setObjectName("brand")
        # Names can be long: elided (whole text in the tooltip) so the window never grows.
        self._practice_label = ElidedLabel()
        self._practice_label.setObjectName("practiceName")
        self._user_label = ElidedLabel()
        self._user_label.setObjectName("userName")
        self._user_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._lock_button = QPushButton("Lock")
        self._lock_button.setObjectName("main.lock")
        self._lock_button.setToolTip("Lock gpshare now (Ctrl+L). Your work is kept.")
        self._lock_button.setAccessibleName("Lock gpshare")
        self._lock_button.clicked.connect(lambda: self.lock())
        top_layout.addWidget(brand)
        top_layout.addWidget(self._practice_label, 3)
        top_layout.addWidget(self._user_label, 2)
        top_layout.addWidget(self._lock_button)
        outer.addWidget(top)
        # Vault version 2: after a break-glass ceremony, until two leads/admins acknowledge it.
        from gpshare.ui.breakglass import BreakglassBanner

        self.breakglass_banner = BreakglassBanner()
        outer.addWidget(self.breakglass_banner)
        # Told once at unlock (a practice server restored since this computer last connected).
        from gpshare.ui.notices import NoticeBanner

        self.notice_banner = NoticeBanner()
        outer.addWidget(self.notice_banner)
        # A lead's integrity check: at sign-in, daily and on demand (DESIGN §10.3).
        from gpshare.ui.integrity_watch import IntegrityWatch

        self.integrity_watch = IntegrityWatch(self)
        self.integrity_watch.failed.connect(self._integrity_alarm)
        self.integrity_watch.checked.connect(self._integrity_checked)

        body = QHBoxLayout()
        body.setContentsMargins(0, 0, 0, 0)
        body.setSpacing(0)
        self._nav_panel = QFrame()
        self._nav_panel.setObjectName("navPanel")
        self._nav_panel.setFixedWidth(220)
        self._nav_layout = QVBoxLayout(self._nav_panel)
        self._nav_layout.setContentsMargins(0, 16, 0, 16)
        self._nav_layout.setSpacing(2)
        caption = QLabel("MENU")
        caption.setProperty("role", "navcaption")
        self._nav_layout.addWidget(caption)
        self._nav_layout.addStretch(1)
        self._nav_group = QButtonGroup(self)
        self._nav_group.setExclusive(True)
        body.addWidget(self._nav_panel)

        self.page_stack = QStackedWidget()
        self.page_stack.setObjectName("main.pages")
        body.addWidget(self.page_stack, 1)
        outer.addLayout(body, 1)
        return workspace

    def _build_actions(self) -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtGui import QAction, QKeySequence

        self.lock_action = QAction("&Lock", self)
        self.lock_action.setObjectName("action.lock")
        self.lock_action.setShortcut(QKeySequence("Ctrl+L"))
        self.lock_action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        self.lock_action.setStatusTip("Hide everything and drop the key; your work is kept.")
        self.lock_action.triggered.connect(lambda: self.lock())

        self.change_password_action = QAction("&Change password…", self)
        self.change_password_action.setObjectName("action.change_password")
        self.change_password_action.triggered.connect(self.change_password)

        # Vault version 2: the six words a lead compares before confirming this user's key.
        self.my_key_action = QAction("My &key words…", self)
        self.my_key_action.setObjectName("action.my_key")
        self.my_key_action.triggered.connect(self.show_my_key)

        self.forget_login_action = QAction("&Forget remembered login on this computer", self)
        self.forget_login_action.setObjectName("action.forget_login")
        self.forget_login_action.triggered.connect(self.forget_remembered_login)

        self.quit_action = QAction("&Quit", self)
        self.quit_action.setObjectName("action.quit")
        self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        self.quit_action.triggered.connect(self.close)

        self.about_action = QAction("&About gpshare", self)
        self.about_action.setObjectName("action.about")
        self.about_action.triggered.connect(self.show_about)

        file_menu = self._file_menu
        file_menu.addAction(self.lock_action)
        file_menu.addAction(self.change_password_action)
        file_menu.addAction(self.my_key_action)
        file_menu.addAction(self.forget_login_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        help_menu = self._help_menu
        from gpshare.help import TOPICS

        self.help_actions: dict[str, QAction] = {}
        for item in TOPICS:
            action = QAction(item.title, self)
            action.setObjectName(f"action.help.{item.key}")
            action.triggered.connect(lambda _checked=False, key=item.key: self.show_help(key))
            help_menu.addAction(action)
            self.help_actions[item.key] = action
        self.help_actions["guide"].setShortcut(QKeySequence(QKeySequence.StandardKey.HelpContents))
        self.help_actions["guide"].setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        self.addAction(self.help_actions["guide"])
        help_menu.addSeparator()
        help_menu.addAction(self.about_action)
        # Actions with shortcuts must belong to the window, or they only work while a menu is open.
        self.addActions([self.lock_action, self.quit_action])

    def _build_status_bar(self) -> None:
        from gpshare.ui.widgets import ElidedLabel

        bar = self.statusBar()
        self._status_user = ElidedLabel()
        self._status_user.setObjectName("status.user")
        self._status_user.setMinimumWidth(120)
        self._status_practice = ElidedLabel()
        self._status_practice.setObjectName("status.practice")
        self._status_practice.setMinimumWidth(120)
        bar.addPermanentWidget(self._status_user, 2)
        bar.addPermanentWidget(self._status_practice, 1)
        from gpshare.ui.server_status import ServerStatus

        # A practice server that stopped answering: said here (never a modal), retried in a
        # worker, cleared by itself once a step or the retry reaches it.
        self._status_server = ElidedLabel()  # never widens the window; whole text in its tip
        self._status_server.setObjectName("status.server")
        self._status_server.setMinimumWidth(200)
        self._status_server.setStyleSheet(
            "#status\\.server { background: #fff4d6; color: #5c3b00; border: 1px solid #e0b341;"
            " border-radius: 4px; padding: 1px 8px; font-weight: 600; }"
        )
        bar.insertPermanentWidget(0, self._status_server, 4)
        self.server_status = ServerStatus(self._status_server, self)
        self.server_status.alarm.connect(self._server_alarm)
        from gpshare.ui.worker import TaskBar

        # A lead's search index, caught up (or rebuilt) in a worker right after sign-in.
        self.index_task = TaskBar("status.indexTask")
        self.index_task.cancel_button.setToolTip("Stop building the search index; try again later")
        bar.addPermanentWidget(self.index_task, 2)

    def _update_actions(self) -> None:
        open_ = self._session is not None
        self.lock_action.setEnabled(open_)
        self.change_password_action.setEnabled(open_)
        self.my_key_action.setVisible(
            open_ and self._session is not None and self._session.keys is not None
        )
        remembered = False
        if open_:
            assert self._session is not None
            remembered = self._session.vault.has_keyring_slot(self._session.user.username)
        self.forget_login_action.setEnabled(remembered)

    # ----- public API ------------------------------------------------------------------------
    @property
    def session(self) -> Session | None:
        """The open session, or None while locked."""
        return self._session

    @property
    def is_locked(self) -> bool:
        return self._session is None

    @property
    def current_page_key(self) -> str | None:
        return self._current_key

    def register_page(self, key: str, factory: PageFactory) -> None:
        """Plug in the page shown for `key` (a navigation key or any other page key)."""
        self._factories[key] = factory
        existing = self._pages.pop(key, None)
        if existing is not None:  # replace a page already built (e.g. the placeholder)
            self.page_stack.removeWidget(existing)
            existing.deleteLater()
            if self._current_key == key:
                self.navigate(key)

    def page(self, key: str) -> QWidget | None:
        """The page widget for `key` if it has been created since the last unlock."""
        return self._pages.get(key)

    def visible_nav_keys(self) -> list[str]:
        """Navigation keys shown to the current user (empty while locked)."""
        return list(self._nav_buttons)

    def nav_button(self, key: str) -> QPushButton | None:
        return self._nav_buttons.get(key)

    def set_nav_badge(self, key: str, count: int) -> None:
        """Show a count on a navigation entry (e.g. what needs action); 0 removes it."""
        button = self._nav_buttons.get(key)
        entry = next((e for e in NAV_ENTRIES if e.key == key), None)
        if button is None or entry is None:
            return
        button.setText(f"{entry.label}  ({count})" if count else entry.label)
        button.setAccessibleName(
            f"{entry.label}, {count} need{'s' if count == 1 else ''} action"
            if count
            else entry.label
        )

    def navigate(self, key: str) -> QWidget | None:
        """Show the page for `key` (creating it if needed). None if locked or not for this role."""
        session = self._session
        if session is None:
            return None
        entry = next((e for e in NAV_ENTRIES if e.key == key), None)
        if entry is not None and session.user.role not in entry.roles:
            return None
        if entry is None and key not in self._factories:
            return None
        page = self._pages.get(key)
        if page is None:
            page = self._create_page(key, entry, session)
            page.setObjectName(page.objectName() or f"page.{key}")
            self._pages[key] = page
            # Lay the page out at the size it will have before it joins the window, so a
            # first, not yet settled size hint never pushes the window wider.
            page.resize(self.page_stack.size())
            page.ensurePolished()
            self.page_stack.addWidget(page)
        self.page_stack.setCurrentWidget(page)
        self._current_key = key
        button = self._nav_buttons.get(key)
        if button is not None:
            button.setChecked(True)
        self.page_changed.emit(key)
        return page

    def _create_page(self, key: str, entry: NavEntry | None, session: Session) -> QWidget:
        from gpshare.ui.unlock import busy_cursor

        factory = self._factories.get(key)
        title = entry.label if entry else key.replace("_", " ").capitalize()
        if factory is None:
            return PlaceholderPage(title, entry.description if entry else "")
        try:
            with busy_cursor():
                return factory(session, self)
        except StoreError as exc:
            return ProblemPage(title, str(exc))
        except Exception as exc:
            log.error(
                "page %s could not be created: %s", key, exc.__class__.__name__, exc_info=True
            )
            return ProblemPage(
                title,
                "This page could not be opened because of an unexpected problem. "
                "Lock and unlock gpshare, then try again; if it keeps happening, "
                "tell your practice administrator.",
            )

    def focus_page(self) -> None:
        """Put keyboard focus on the first focusable control of the current page."""
        from PySide6.QtCore import Qt

        page = self.page_stack.currentWidget()
        if page is None:
            return
        candidate = page.nextInFocusChain()
        while candidate is not None and candidate is not page:
            if (
                page.isAncestorOf(candidate)
                and candidate.isVisibleTo(page)
                and candidate.isEnabled()
                and candidate.focusPolicy() & Qt.FocusPolicy.TabFocus
            ):
                candidate.setFocus(Qt.FocusReason.OtherFocusReason)
                return
            candidate = candidate.nextInFocusChain()
        button = self._nav_buttons.get(self._current_key or "")
        if button is not None:
            button.setFocus(Qt.FocusReason.OtherFocusReason)

    def set_status(self, text: str, timeout_ms: int = 6000) -> None:
        """A short, non-patient message in the status bar."""
        self.statusBar().showMessage(text, timeout_ms)

    # ----- unlock -----------------------------------------------------------------------
    def start_session(self, session: Session) -> None:
        """Show the workspace for an unlocked session (also usable directly by tests)."""
        self.finish_build()  # a no-op unless a session opens before a deferred build finished
        if self._session is not None and self._session is not session:
            self._drop_session("replaced")
        self._session = session
        if self._previous_user != session.user.username:
            self.lock_state.clear()
            self._previous_key = None
        self._previous_user = session.user.username
        self.refresh_settings()
        self._build_nav(session)
        self.breakglass_banner.show_for(session)
        self.notice_banner.show_notices(list(session.notices))
        if session.user.role == "lead":
            self.integrity_watch.start(session)
        self.server_status.start(session)
        user = session.user
        self._user_label.setText(f"{user.full_name}  ·  {user.role_title}")
        self._status_user.setText(
            f"Signed in as {user.full_name} ({user.username}) — {user.role_title}"
        )
        if self._install_pages and not self._pages_installed:
            self._pages_installed = True
            install_page_modules(self)
        self._screens.setCurrentWidget(self._workspace)
        # Before any page opens, so the Records screen finds the index being prepared.
        self.prepare_search_index()
        allowed = self.visible_nav_keys()
        target = (
            self._previous_key
            if self._previous_key
            and (
                self._previous_key in allowed
                or self._previous_key not in {e.key for e in NAV_ENTRIES}
            )
            else None
        )
        landing = LANDING.get(session.user.role)
        if target is None and landing in allowed and self.navigate(landing) is not None:
            target = landing
        if (target is None or self.navigate(target) is None) and allowed:
            self.navigate(allowed[0])
        self._last_activity = self.clock.now()
        app = QApplication.instance()
        if app is not None:
            if self._activity_filter is None:
                self._activity_filter = _ActivityFilter(self.note_activity, self)
            app.installEventFilter(self._activity_filter)
        self._idle_timer.start()
        self._update_actions()
        self.statusBar().show()
        self.focus_page()
        self.unlocked.emit(session)

    def prepare_search_index(self) -> None:
        """A lead who holds the lead key (version 2, typed password): catch the search index
        up, or rebuild it with progress in the status bar, in a worker session (never on the
        GUI thread). The search-index service decides what that means on each engine."""
        session = self._session
        if (
            session is None
            or self.index_task.busy
            or session.user.role != "lead"
            or session.keys is None
            or not session.keys.holds_lead_key
        ):
            return
        task = self.index_task.start(
            session,
            "Search index: catching up…",
            lambda worker, ctx: worker.search_index.prepare(ctx.progress, ctx.cancelled),
            lambda _count: self.set_status("Search index up to date."),
            lambda exc: self.set_status(f"The search index could not be built: {exc}", 15000),
        )
        from PySide6.QtCore import Qt

        task.signals.progress.connect(self._index_progress, Qt.ConnectionType.QueuedConnection)

    def _index_progress(self, task: Any, done: int, total: int) -> None:
        if task is self.index_task.task and total:
            self.index_task.label.setText(
                f"Search index being rebuilt ({int(100 * done / total)} %)…"
            )

    def _integrity_checked(self, check: Any) -> None:
        if not check.ok:
            problem = check.problems[0] if check.problems else "see the dashboard."
            self._integrity_alarm(f"The integrity check found a problem: {problem}")

    def _integrity_alarm(self, problem: str) -> None:
        """A failed (or impossible) integrity check is also told above every page, so the
        lead sees it wherever they are; the dashboard card has the details."""
        lines = [t for t in self.notice_banner.text.text().split("\n") if t]
        alarm = f"{problem} See Lead workspace › Dashboard, and tell the practice manager."
        self.notice_banner.show_notices([*lines, alarm])

    def _server_alarm(self, problem: str) -> None:
        """A background retry reached a server that must not be used (the rollback or fork
        alarm): told above every page, after what the band already says."""
        shown = [t for t in self.notice_banner.text.text().split("\n") if t]
        self.notice_banner.show_notices([*shown, problem])

    def refresh_settings(self) -> None:
        """Re-read practice name and auto-lock time (after the admin saves settings)."""
        session = self._session
        if session is None:
            return
        try:
            values = session.practice.settings()
        except StoreError:
            values = {}
        practice = (values.get("practice_name") or session.vault.practice_name or "").strip()
        self.setWindowTitle(f"gpshare — {practice}" if practice else "gpshare")
        self._practice_label.setText(practice)
        self._status_practice.setText(practice)
        try:
            minutes = int(str(values.get("auto_lock_minutes", DEFAULT_AUTO_LOCK_MINUTES)))
        except ValueError:
            minutes = DEFAULT_AUTO_LOCK_MINUTES
        self._auto_lock = timedelta(minutes=max(1, minutes))

    @property
    def auto_lock_after(self) -> timedelta:
        return self._auto_lock

    def _build_nav(self, session: Session) -> None:
        from PySide6.QtGui import QKeySequence
        from PySide6.QtWidgets import QPushButton

        self._clear_nav()
        entries = nav_entries_for(session.user.role)
        for index, entry in enumerate(entries, start=1):
            button = QPushButton(entry.label)
            button.setObjectName(f"nav.{entry.key}")
            button.setProperty("nav", True)
            button.setCheckable(True)
            button.setAutoDefault(False)
            button.setToolTip(f"{entry.description}  (Ctrl+{index})")
            button.setAccessibleName(entry.label)
            button.setAccessibleDescription(entry.description)
            button.setShortcut(QKeySequence(f"Ctrl+{index}"))
            button.clicked.connect(lambda _checked=False, key=entry.key: self.navigate(key))
            self._nav_group.addButton(button)
            self._nav_layout.insertWidget(self._nav_layout.count() - 1, button)
            self._nav_buttons[entry.key] = button

    def _clear_nav(self) -> None:
        for button in self._nav_buttons.values():
            self._nav_group.removeButton(button)
            self._nav_layout.removeWidget(button)
            button.hide()
            button.setParent(None)
            button.deleteLater()
        self._nav_buttons.clear()

    # ----- lock ------------------------------------------------------------------------------------
    def lock(self, *, reason: str = "manual", notice: str | None = None) -> None:
        """Emit about_to_lock, destroy every page, drop the key, show the unlock screen."""
        if self._session is None:
            return
        username = self._session.user.username
        self.about_to_lock.emit()
        self._previous_key = self._current_key
        self._drop_session(reason)
        if notice is None and reason == "manual":
            notice = "gpshare is locked. Unlock to carry on where you left off."
        self.unlock_widget.prepare(username, notice)
        self.locked.emit()

    def _drop_session(self, reason: str) -> None:
        """Tear down everything that shows patient data, then close the session."""
        from PySide6.QtWidgets import QDialog

        session = self._session
        self._idle_timer.stop()
        self.index_task.cancel()  # its worker session must not outlive the lock
        self.integrity_watch.stop()
        self.server_status.stop()
        app = QApplication.instance()
        if app is not None and self._activity_filter is not None:
            app.removeEventFilter(self._activity_filter)
        for dialog in self.findChildren(QDialog):
            if dialog.isVisible():
                dialog.reject()
        for page in list(self._pages.values()):
            self.page_stack.removeWidget(page)
            page.hide()
            page.setParent(None)
            page.deleteLater()
        self._pages.clear()
        self._current_key = None
        self._clear_nav()
        self._session = None
        self.breakglass_banner.show_for(None)
        self.notice_banner.show_notices([])
        self._user_label.clear()
        self._status_user.clear()
        self._status_practice.clear()
        self._practice_label.clear()
        self.statusBar().clearMessage()
        self.setWindowTitle("gpshare")
        self._screens.setCurrentWidget(self.unlock_widget)
        self.statusBar().hide()
        self._update_actions()
        if session is not None:
            try:
                session.lock(reason)
            except Exception as exc:  # never stop a lock because something failed on the way
                log.warning("lock did not complete cleanly: %s", exc.__class__.__name__)
                session.close()

    def note_activity(self) -> None:
        """Called by the application-wide event filter on every key press or mouse event."""
        if self._session is not None:
            self._last_activity = self.clock.now()

    def check_idle(self) -> bool:
        """Lock if the user has been idle for the auto-lock time; True if it locked."""
        if self._session is None:
            return False
        idle = self.clock.now() - self._last_activity
        if idle >= timedelta(milliseconds=IDLE_CHECK_INTERVAL_MS):
            # The WAL checkpoint runs here, while nobody is typing (not inside a save).
            self._session.checkpoint()
        if idle < self._auto_lock:
            return False
        minutes = int(self._auto_lock.total_seconds() // 60)
        self.lock(
            reason="idle",
            notice=f"gpshare locked itself after {minutes} minute{'s' if minutes != 1 else ''} "
            "without activity. Unlock to carry on where you left off.",
        )
        return True

    # ----- menu actions ------------------------------------------------------------------------
    def change_password(self) -> None:
        from PySide6.QtWidgets import QDialog

        from gpshare.ui import dialogs
        from gpshare.ui.unlock import ChangePasswordDialog

        session = self._session
        if session is None:
            return
        dialog = ChangePasswordDialog(session, parent=self)
        if dialogs.exec_dialog(dialog) == QDialog.DialogCode.Accepted:
            self.set_status("Your password has been changed.")
        self._update_actions()

    def show_my_key(self) -> None:
        """Show the acting user's six key words (vault version 2) and whether a lead has
        confirmed them."""
        from gpshare.ui import dialogs

        session = self._session
        if session is None:
            return
        try:
            own = session.directory.own_key()
        except StoreError as exc:
            dialogs.error(self, "My key words", str(exc))
            return
        if own is None:
            dialogs.information(self, "My key words", "Choose your own password first.")
        elif own.confirmed:
            dialogs.information(
                self,
                "My key words",
                f"Your key is confirmed by a safeguarding lead. Its words:\n\n{own.fingerprint}",
            )
        else:
            dialogs.information(
                self,
                "My key words",
                "A safeguarding lead must confirm your key before records are shared with it. "
                "Read them these six words, in person or by phone:\n\n"
                f"{own.fingerprint}\n\nNever type or send them to anyone else.",
            )

    def forget_remembered_login(self) -> None:
        from gpshare.ui import dialogs

        session = self._session
        if session is None:
            return
        if not dialogs.question(
            self,
            "Forget remembered login",
            "Stop this computer remembering your login? You will type your password to unlock.",
            yes="Forget",
            no="Keep",
        ):
            return
        try:
            session.users.forget_login()
        except StoreError as exc:
            dialogs.error(self, "Forget remembered login", str(exc))
            return
        self.set_status("This computer no longer remembers your login.")
        self._update_actions()

    def show_help(self, key: str = "guide") -> QWidget:
        """Open (or bring forward) the Help window on a topic. Works while locked too: it
        holds no patient data."""
        from gpshare.ui.help_view import HelpWindow

        window = getattr(self, "_help_window", None)
        if not isinstance(window, HelpWindow):
            window = HelpWindow(self)
            self._help_window = window
        window.show_topic(key)
        window.show()
        window.raise_()
        window.activateWindow()
        return window

    def show_about(self) -> None:
        from gpshare.ui import dialogs

        dialogs.information(
            self,
            "About gpshare",
            f"gpshare {__version__}\n\nOffline, encrypted child-safeguarding information-sharing "
            "assessments and signed referral letters for GP practices.\n\nRecords are encrypted on "
            "this computer; nothing is sent anywhere by gpshare itself.",
        )

    # ----- restore ----------------------------------------------------------------------------------
    def restore_backup(self, snapshot: Path, password: str, lead: Any = None) -> None:
        """Close the session, restore `snapshot` (admin password checked again), show unlock.

        With `lead` (a LeadPresent, or a BreakGlassPresent when no lead can) `snapshot` is
        from before the upgrade to version 2: the password is the one the admin had then,
        checked against the backup by the restore."""
        from gpshare.services import restore
        from gpshare.ui import dialogs
        from gpshare.ui.unlock import busy_cursor

        session = self._session
        if session is None:
            return
        username = session.user.username
        folder = session.vault.folder
        try:
            if lead is None:
                session.users.verify_password(password)  # before closing anything
        except StoreError as exc:
            dialogs.error(self, "Restore backup", str(exc))
            return
        self.about_to_lock.emit()
        self._previous_key = self._current_key
        self._drop_session("restore")
        error: str | None = None
        notice: str | None = None
        try:
            with busy_cursor():
                if lead is None:
                    aside = restore(folder, Path(snapshot), username, password, self.clock)
                else:
                    from gpshare.services.migrate_v2 import restore_pre_upgrade

                    aside = restore_pre_upgrade(
                        folder, Path(snapshot), username, password, lead, self.clock
                    )
        except StoreError as exc:
            error = str(exc)
        except Exception as exc:
            log.error("restore failed unexpectedly: %s", exc.__class__.__name__, exc_info=True)
            error = (
                "The backup could not be restored because of an unexpected problem. The vault has "
                "not been changed. Unlock and try again, or use 'gpshare restore'."
            )
        else:
            notice = (
                f"The backup {Path(snapshot).name} has been restored. The files it replaced are "
                f"kept in {aside}. Unlock to continue."
            )
            if lead is not None:
                notice = (
                    f"The backup {Path(snapshot).name} from before the upgrade has been restored; "
                    f"the files it replaced are kept in {aside}. This vault is version 1 again: "
                    "everyone signs in with the password they had then, and every password opens "
                    "every record. Upgrade it again now (Upgrade this vault…)."
                )
        self.unlock_widget.prepare(username, notice)
        if error:
            self.unlock_widget.show_error(error)
        self.locked.emit()

    # ----- quit ----------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        session = self._session
        if session is not None:
            from gpshare.ui.unlock import busy_cursor

            self.about_to_lock.emit()
            try:
                with busy_cursor():
                    session.backups.backup_now(automatic=True)
            except Exception as exc:  # a failed backup must not stop anyone closing
                log.warning(
                    "automatic backup on close failed: %s: %s",
                    exc.__class__.__name__,
                    exc if isinstance(exc, StoreError) else "",
                )
            self._drop_session("quit")
        app = QApplication.instance()
        if app is not None and self._activity_filter is not None:
            app.removeEventFilter(self._activity_filter)
        event.accept()


def install_page_modules(window: MainWindow, modules: tuple[str, ...] = PAGE_MODULES) -> None:
    """Call ``install(window)`` of each UI module in `modules` that exists."""
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            log.error("page module %s could not be imported", name, exc_info=True)
            continue
        except Exception:
            log.error("page module %s could not be imported", name, exc_info=True)
            continue
        install = getattr(module, "install", None)
        if callable(install):
            try:
                install(window)
            except Exception:
                log.error("page module %s failed to install", name, exc_info=True)


# ----- entry point ---------------------------------------------------------------------------------
def _parse(argv: list[str]) -> tuple[str | None, bool]:
    """gpshare's own options of the app, ``--vault DIR`` (or ``--vault=DIR``) and
    ``--smoke-test``; anything else is left to Qt (e.g. ``-platform``). By hand, not with
    argparse: its first parser costs ~4 ms (gettext look-ups) before the first paint."""
    vault: str | None = None
    smoke_test = False
    rest = iter(argv)
    for arg in rest:
        if arg == "--smoke-test":
            smoke_test = True
        elif arg == "--vault":
            vault = next(rest, None)
            if not vault:
                raise ValueError("--vault needs a folder, e.g. gpshare --vault D:\\gpshare")
        elif arg.startswith("--vault="):
            vault = arg.partition("=")[2]
    return vault, smoke_test


def _create_demo_if_missing(folder: Path) -> None:
    if (folder / "vault.json").exists() or (folder / "records.db").exists():
        return
    print(f"No vault in {folder}: creating a demo vault with fictional data…", flush=True)
    try:
        from gpshare.demo import create_demo_vault

        info = create_demo_vault(folder)
    except StoreError as exc:
        print(f"Could not create the demo vault: {exc}", file=sys.stderr)
        return
    print(f"Demo vault created in {info['vault']} (fictional data only). Sign in as:")
    for user in info["users"]:
        print(f"  {user['username']:12} {user['role']:10} password: {user['password']}")
    if info.get("breakglass_code"):
        print(f"  Break-glass code (to practise the ceremony): {info['breakglass_code']}")
    if sys.stdout is not None:  # a windowed Windows build has no stdout
        sys.stdout.flush()


def run_app(argv: list[str] | None = None) -> int:
    """`gpshare` with no sub-command: the desktop app. Returns the process exit code.

    The unlock screen is built and painted first, its username field ready for typing
    (DESIGN §8: within 1.5 × a bare window's start); the menus' actions, the workspace, the
    rest of the style sheet and the window icon follow on the next turn of the event loop,
    in the same window."""
    raw = list(sys.argv[1:] if argv is None else argv)
    try:
        vault, smoke_test = _parse(raw)
    except ValueError as exc:
        print(f"gpshare: {exc}", file=sys.stderr)
        return 2
    from gpshare.ui import style

    app = QApplication.instance()
    fusion_chosen = app is None
    if app is None:
        # Qt takes the options it knows (e.g. -platform) and ignores gpshare's own.
        program = sys.argv[0] if sys.argv else "gpshare"
        app = QApplication([program, *raw, *style.FUSION_ARGS])
    assert isinstance(app, QApplication)
    app.setApplicationName("gpshare")
    app.setOrganizationName("gpshare")
    app.setApplicationDisplayName("gpshare")
    app.setApplicationVersion(__version__)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if vault:
        folder = Path(vault).expanduser()
    else:
        from gpshare.paths import default_vault_dir

        folder = default_vault_dir()

    style.apply(app, fusion_chosen=fusion_chosen)
    window = MainWindow(vault_folder=folder, install_pages=True, defer_build=True)
    window.show()
    app.processEvents()
    if smoke_test:
        shown = unlock_screen_ready(window)
        print(
            "smoke-test: unlock screen shown" if shown else "smoke-test: unlock screen NOT shown",
            flush=True,
        )

    def finish() -> None:
        _set_window_icon(app)
        # A demo vault only for evaluation at the default place: when IT has configured a
        # folder (--vault or GPSHARE_VAULT) an empty one must stay empty until 'gpshare init'.
        if not smoke_test and not vault and not os.environ.get("GPSHARE_VAULT"):
            _create_demo_if_missing(folder)
        window.finish_build()

    if not smoke_test:
        QTimer.singleShot(0, finish)  # the next turn of the event loop, after the paint
        return int(app.exec())
    finish()
    built = window.is_built and unlock_screen_ready(window)
    print(
        "smoke-test: start-up complete" if built else "smoke-test: start-up NOT complete",
        flush=True,
    )
    window.close()
    app.processEvents()
    return 0 if shown and built else 1


def unlock_screen_ready(window: MainWindow) -> bool:
    """The unlock screen is on show and its first empty field (the username at start-up) is
    the window's focus widget, so typing goes there: what the start-up budget times (DESIGN
    §8). The window's focus widget, not hasFocus(): a window manager may activate the window
    a little later, and the field then has the focus."""
    unlock = window.unlock_widget
    return (
        window.isVisible()
        and unlock.isVisible()
        and window.focusWidget() is unlock.first_empty_field()
    )


def _set_window_icon(app: QApplication) -> None:
    icon_path = Path(__file__).with_name("icons") / "gpshare.svg"
    if icon_path.exists():
        from PySide6.QtGui import QIcon

        app.setWindowIcon(QIcon(str(icon_path)))
