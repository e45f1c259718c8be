"""The signed referral letter on screen: preview (QtPdf), print, save and a protected copy.

* :class:`LetterView` shows one stored letter from its exact signed bytes, held in memory
  (a ``QBuffer`` feeds ``QPdfDocument``; the PDF never touches a temp file). Printing renders
  raster pages (fine for paper); *Save as…* and *Save protected copy…* write signed bytes.
* :func:`open_letter_for_record` is what a "Letter" button calls: it explains why there is no
  letter, opens the latest one, or asks for the clinician's password and signs a new one.
* :class:`LettersPanel` lists a record's letters for the record detail view to embed.

QtPdf, QtPdfWidgets and QtPrintSupport are imported only when a letter is actually shown or
printed (QtPdf alone costs ~0.24 s), so importing this module at unlock stays cheap. Every
prompt goes through :mod:`gpshare.ui.dialogs` so tests can script the answers.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QBuffer,
    QByteArray,
    QEvent,
    QIODevice,
    QMargins,
    QObject,
    QPointF,
    QRectF,
    QSize,
    QSizeF,
    QStandardPaths,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QCloseEvent,
    QColor,
    QImage,
    QKeyEvent,
    QKeySequence,
    QPainter,
    QPalette,
    QShortcut,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gpshare.errors import StoreError, WrongPasswordError
from gpshare.services import LetterResult
from gpshare.ui import dialogs
from gpshare.ui import style as st
from gpshare.ui.followup_dialog import letter_status_text, record_sent
from gpshare.ui.unlock import busy_cursor
from gpshare.ui.widgets import ElidedLabel

if TYPE_CHECKING:
    from PySide6.QtPdf import QPdfDocument
    from PySide6.QtPrintSupport import QPrinter

    from gpshare.records import LetterMeta, Record
    from gpshare.services import RecordView, Session

__all__ = [
    "LetterView",
    "LettersPanel",
    "ProtectedCopyDialog",
    "open_letter_for_record",
    "render_page_on_white",
]

log = logging.getLogger(__name__)

ZOOM_STEP = 1.25
MIN_ZOOM = 0.25
MAX_ZOOM = 4.0
# Pages are rendered at the printer's resolution, but never above this: an A4 page at
# 600 dpi is already ~140 MB of pixels, and letters are text.
MAX_PRINT_DPI = 600
PDF_FILTER = "PDF documents (*.pdf)"
MIN_PDF_PASSWORD = 10
UK_TIME_ZONE = "Europe/London"
PREVIEW_SURROUND = "#C9D0D4"  # around the white pages

_HEADER_STYLE = f"""
QFrame#letterHeader {{
    background: {st.PALE_BLUE};
    border: none;
    border-left: 6px solid {st.BLUE};
    border-bottom: 1px solid {st.LIGHT_BORDER};
}}
QFrame#letterHeader QLabel {{ background: transparent; }}
QLabel#letterTitle {{ font-size: 13pt; font-weight: 600; color: {st.TEXT}; }}
QLabel#letterSigned {{ color: {st.GREEN}; font-weight: 600; }}
QLabel#letterMismatch {{ color: {st.RED}; font-weight: 600; }}
QFrame#letterToolbar {{ background: {st.WHITE}; border-bottom: 1px solid {st.LIGHT_BORDER}; }}
QPdfView {{ border: none; }}
"""


# ----- small helpers ---------------------------------------------------------------------------------
def _uk_time(value: str | datetime) -> str:
    """'25 Nov 2026, 10:00' in UK local time (the letter's own convention)."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.tzinfo is not None:
        try:
            from zoneinfo import ZoneInfo

            when = when.astimezone(ZoneInfo(UK_TIME_ZONE))
        except Exception:  # tzdata missing: show it as stored
            pass
    return f"{when.day} {when:%b %Y, %H:%M}"


def _signer_name(session: Session, username: str, record: Record | None) -> str:
    """A readable name for a letter's signer, from what this session may already see."""
    if username == session.user.username:
        return session.user.full_name
    if record is not None and record.clinician == username and record.clinician_name:
        return record.clinician_name
    return username


def _default_folder() -> Path:
    found = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    return Path(found) if found else Path.home()


def _with_pdf_suffix(path: Path) -> Path:
    return path if path.suffix.lower() == ".pdf" else path.with_name(path.name + ".pdf")


def render_page_on_white(document: QPdfDocument, page: int, size: QSize) -> QImage:
    """Render one page at `size` pixels and composite it on white (QtPdf leaves it transparent).

    Done in place (paint white *behind* the page, then drop the alpha channel), so a large
    print-resolution page needs no second buffer.
    """
    image = document.render(page, size)
    if image.isNull():
        return image
    painter = QPainter(image)
    painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_DestinationOver)
    painter.fillRect(image.rect(), QColor(st.WHITE))
    painter.end()
    image.convertTo(QImage.Format.Format_RGB32)
    return image


def _lock_signal(widget: QWidget | None) -> Any:
    """The main window's ``about_to_lock`` signal, if `widget` lives in one (duck-typed)."""
    if widget is None:
        return None
    return getattr(widget.window(), "about_to_lock", None)


# ----- the letter view ---------------------------------------------------------------------------------
class LetterView(QWidget):
    """Preview of one signed letter with Print…, Save as…, Save protected copy… and Close.

    `letter` is a letter id (opened through :meth:`session.letters.open_letter`, which audits the view)
    or a :class:`LetterResult` already in hand (e.g. just generated). The view closes itself
    when the main window is about to lock, so no letter stays on screen.
    """

    closed = Signal()
    printed = Signal(int)  # pages sent to the printer
    saved = Signal(object)  # Path of the signed copy written
    protected_saved = Signal(object)  # Path of the protected copy written

    def __init__(
        self, session: Session, letter: int | LetterResult, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        from PySide6.QtPdf import QPdfDocument
        from PySide6.QtPdfWidgets import QPdfView

        self.setObjectName("letterView")
        self.setProperty("page", True)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(_HEADER_STYLE)
        self.session = session
        self.result: LetterResult = (
            letter if isinstance(letter, LetterResult) else session.letters.open_letter(int(letter))
        )
        self.meta: LetterMeta | None = None
        self._record: Record | None = None
        self._discarded = False
        self._closing = False
        self._shown_once = False
        self._load_details()
        self.setWindowTitle(f"Referral letter — {self.result.record_id}")

        # The signed bytes stay in memory: QByteArray -> QBuffer -> QPdfDocument (kept alive here).
        self._pdf_bytes = QByteArray(self.result.pdf)
        self._pdf_buffer = QBuffer(self._pdf_bytes, self)
        self._pdf_buffer.open(QIODevice.OpenModeFlag.ReadOnly)
        self.document = QPdfDocument(self)
        self.document.load(self._pdf_buffer)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self._build_header())
        layout.addWidget(self._build_toolbar())
        self._update_sent_button()

        self.pdf_view = QPdfView(self)
        self.pdf_view.setObjectName("letter.pdf_view")
        self.pdf_view.setAccessibleName("Letter preview")
        self.pdf_view.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.pdf_view.setPageMode(QPdfView.PageMode.MultiPage)
        self.pdf_view.setPageSpacing(16)
        self.pdf_view.setDocumentMargins(QMargins(16, 16, 16, 16))
        self.pdf_view.setDocument(self.document)
        surround = self.pdf_view.palette()
        surround.setColor(QPalette.ColorRole.Dark, QColor(PREVIEW_SURROUND))  # QPdfView paints Dark
        self.pdf_view.setPalette(surround)
        self.pdf_view.setZoomMode(QPdfView.ZoomMode.FitToWidth)
        self.pdf_view.installEventFilter(self)
        self.pdf_view.viewport().installEventFilter(self)
        self.pdf_view.pageNavigator().currentPageChanged.connect(self._update_page_label)
        self.pdf_view.zoomFactorChanged.connect(self._update_zoom_label)
        self.pdf_view.zoomModeChanged.connect(self._update_zoom_label)
        layout.addWidget(self.pdf_view, 1)

        self.problem_label = QLabel(self)
        self.problem_label.setObjectName("letter.problem")
        self.problem_label.setProperty("role", "error")
        self.problem_label.setWordWrap(True)
        self.problem_label.hide()
        layout.addWidget(self.problem_label)
        if self.document.status() != QPdfDocument.Status.Ready or self.document.pageCount() < 1:
            self.pdf_view.hide()
            self.problem_label.setText(
                "This letter cannot be shown here (the viewer could not read it). You can still save the "
                "signed letter with Save as… and open it in another PDF reader."
            )
            self.problem_label.show()
            self.print_button.setEnabled(False)

        self._build_shortcuts()
        self._update_page_label()
        self._update_zoom_label()
        lock = _lock_signal(parent)
        if lock is not None:
            lock.connect(self.discard)

    # ----- construction ------------------------------------------------------------------
    def _load_details(self) -> None:
        """The letter's metadata (signer, date) and the record, without auditing another view."""
        try:
            self.meta = next(
                (
                    m
                    for m in self.session.letters.list_letters(self.result.record_id)
                    if m.id == self.result.letter_id
                ),
                None,
            )
            self._record = self.session.assessments.get_record(
                self.result.record_id, audit_view=False
            )
        except StoreError as exc:  # details are a courtesy: the letter itself is already open
            log.warning("letter details unavailable: %s", exc.__class__.__name__)

    @property
    def signer_name(self) -> str:
        if self.meta is None:
            return "—"
        return _signer_name(self.session, self.meta.signer, self._record)

    @property
    def signed_at(self) -> str:
        return _uk_time(self.meta.created) if self.meta is not None else "—"

    def _build_header(self) -> QFrame:
        header = QFrame(self)
        header.setObjectName("letterHeader")
        grid = QVBoxLayout(header)
        grid.setContentsMargins(16, 10, 16, 10)
        grid.setSpacing(4)

        top = QHBoxLayout()
        self.title_label = QLabel(f"Referral letter · Record {self.result.record_id}", header)
        self.title_label.setObjectName("letterTitle")
        self.title_label.setTextFormat(Qt.TextFormat.PlainText)
        self.title_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top.addWidget(self.title_label)
        top.addStretch(1)
        marking = QLabel("OFFICIAL — SENSITIVE", header)
        marking.setProperty("role", "marking")
        top.addWidget(marking)
        grid.addLayout(top)

        bottom = QHBoxLayout()
        bottom.setSpacing(18)
        self.signer_label = QLabel(
            f"Signed by <b>{_escape(self.signer_name)}</b> on {self.signed_at}", header
        )
        self.signer_label.setObjectName("letter.signer")
        self.signer_label.setTextFormat(Qt.TextFormat.RichText)
        bottom.addWidget(self.signer_label)
        self.intact = hashlib.sha256(self.result.pdf).hexdigest() == self.result.sha256
        if self.intact:
            signature = f"✔ Digitally signed — SHA-256 {self.result.sha256[:16]}…"
            spoken = f"Digitally signed, SHA-256 {self.result.sha256}"
        else:  # cheap check of the stored bytes against the hash kept on the record
            signature = "⚠ This file does not match the fingerprint stored with the record"
            spoken = signature
        self.signature_label = QLabel(signature, header)
        self.signature_label.setObjectName("letterSigned" if self.intact else "letterMismatch")
        self.signature_label.setTextFormat(Qt.TextFormat.PlainText)
        self.signature_label.setToolTip(f"SHA-256 stored with the record:\n{self.result.sha256}")
        self.signature_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.signature_label.setAccessibleName(spoken)
        bottom.addWidget(self.signature_label)
        bottom.addStretch(1)
        grid.addLayout(bottom)
        return header

    def _build_toolbar(self) -> QFrame:
        bar = QFrame(self)
        bar.setObjectName("letterToolbar")
        # Two rows (viewing, then actions) so the window fits a 1024-pixel screen.
        rows = QVBoxLayout(bar)
        rows.setContentsMargins(12, 8, 12, 8)
        rows.setSpacing(6)
        row = QHBoxLayout()
        row.setSpacing(6)
        rows.addLayout(row)

        def button(
            name: str, text: str, tip: str, slot: Callable[[], object], *, narrow: bool = False
        ) -> QPushButton:
            b = QPushButton(text, bar)
            b.setObjectName(name)
            b.setToolTip(tip)
            b.setAccessibleName(tip.split(" (")[0])
            b.setAutoDefault(False)
            if narrow:
                b.setMinimumWidth(36)
                b.setStyleSheet("padding: 6px 8px;")
            b.clicked.connect(lambda _checked=False: slot())  # not clicked(bool) into slot args
            return b

        self.zoom_out_button = button(
            "letter.zoom_out", "−", "Zoom out (Ctrl+−)", self.zoom_out, narrow=True
        )
        self.zoom_label = QLabel(bar)
        self.zoom_label.setObjectName("letter.zoom")
        self.zoom_label.setMinimumWidth(48)
        self.zoom_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.zoom_in_button = button(
            "letter.zoom_in", "+", "Zoom in (Ctrl++)", self.zoom_in, narrow=True
        )
        self.fit_width_button = button(
            "letter.fit_width",
            "Fit width",
            "Fit the page to the window width (Ctrl+0)",
            self.fit_width,
        )
        for w in (
            self.zoom_out_button,
            self.zoom_label,
            self.zoom_in_button,
            self.fit_width_button,
        ):
            row.addWidget(w)
        row.addSpacing(16)
        self.previous_button = button(
            "letter.previous_page", "◀", "Previous page (Page Up)", self.previous_page, narrow=True
        )
        self.page_label = QLabel(bar)
        self.page_label.setObjectName("letter.page")
        self.page_label.setMinimumWidth(90)
        self.page_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.next_button = button(
            "letter.next_page", "▶", "Next page (Page Down)", self.next_page, narrow=True
        )
        for w in (self.previous_button, self.page_label, self.next_button):
            row.addWidget(w)
        row.addStretch(1)
        self.status_label = ElidedLabel("", bar)  # a long message never widens the window
        self.status_label.setObjectName("letter.status")
        self.status_label.setProperty("role", "hint")
        row.addWidget(self.status_label, 2)
        row = QHBoxLayout()
        row.setSpacing(6)
        row.addStretch(1)
        rows.addLayout(row)

        self.print_button = button(
            "letter.print", "&Print…", "Print the letter on paper (Ctrl+P)", self.print_letter
        )
        self.print_button.setProperty("variant", "primary")
        self.save_button = button(
            "letter.save",
            "&Save as…",
            "Save the signed letter as a PDF file (Ctrl+S)",
            self.save_as,
        )
        self.protected_button = button(
            "letter.save_protected",
            "P&rotected copy…",
            "Save a password-protected, signed copy to attach to a secure email",
            self.save_protected_copy,
        )
        self.sent_button = button(
            "letter.record_sent",
            "Record se&nt…",
            "Record how and when you sent this letter (it then leaves the lead's Needs action)",
            self.record_sent,
        )
        self.close_button = button("letter.close", "&Close", "Close the letter", self.close_letter)
        for w in (
            self.print_button,
            self.save_button,
            self.protected_button,
            self.sent_button,
            self.close_button,
        ):
            row.addWidget(w)
        bar.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        return bar

    def _build_shortcuts(self) -> None:
        context = Qt.ShortcutContext.WidgetWithChildrenShortcut
        for keys, slot in (
            (QKeySequence.StandardKey.ZoomIn, self.zoom_in),
            (QKeySequence.StandardKey.ZoomOut, self.zoom_out),
            (QKeySequence("Ctrl+0"), self.fit_width),
            (QKeySequence.StandardKey.Print, self.print_letter),
            (QKeySequence.StandardKey.Save, self.save_as),
        ):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(context)
            shortcut.activated.connect(lambda s=slot: s())

    # ----- navigation and zoom ----------------------------------------------------------------
    @property
    def page_count(self) -> int:
        return int(self.document.pageCount())

    @property
    def current_page(self) -> int:
        """0-based page currently shown."""
        return int(self.pdf_view.pageNavigator().currentPage())

    def go_to_page(self, page: int) -> None:
        """Scroll so the top of `page` (0-based) is at the top of the view."""
        count = self.page_count
        if count < 1:
            return
        page = max(0, min(count - 1, page))
        navigator = self.pdf_view.pageNavigator()
        if page == self.current_page and count > 1:
            # QPdfView scrolls only when the page *changes*: step off and back to re-align.
            navigator.jump(page + 1 if page + 1 < count else page - 1, QPointF(0, 0))
        navigator.jump(page, QPointF(0, 0))
        self._update_page_label()

    def next_page(self) -> None:
        if self.current_page + 1 < self.page_count:
            self.go_to_page(self.current_page + 1)
        else:  # already on the last page: show its end
            bar = self.pdf_view.verticalScrollBar()
            bar.setValue(bar.maximum())

    def previous_page(self) -> None:
        if self.current_page > 0:
            self.go_to_page(self.current_page - 1)
        else:
            self.pdf_view.verticalScrollBar().setValue(0)

    def _effective_zoom(self) -> float:
        from PySide6.QtPdfWidgets import QPdfView

        if self.pdf_view.zoomMode() == QPdfView.ZoomMode.Custom or self.page_count < 1:
            return float(self.pdf_view.zoomFactor())
        # Fit width: what the view does, worked out the same way (page width in screen pixels).
        margins = self.pdf_view.documentMargins()
        available = self.pdf_view.viewport().width() - margins.left() - margins.right()
        points = self.document.pagePointSize(0).width()
        pixels_per_point = self.logicalDpiX() / 72.0
        return max(MIN_ZOOM, available / (points * pixels_per_point)) if points > 0 else 1.0

    def set_zoom(self, factor: float) -> None:
        """Custom zoom, keeping the middle of what is on screen in the middle."""
        from PySide6.QtPdfWidgets import QPdfView

        bar = self.pdf_view.verticalScrollBar()
        extent = bar.maximum() + bar.pageStep()
        middle = (bar.value() + bar.pageStep() / 2) / extent if extent > 0 else 0.0
        self.pdf_view.setZoomMode(QPdfView.ZoomMode.Custom)
        self.pdf_view.setZoomFactor(max(MIN_ZOOM, min(MAX_ZOOM, factor)))
        self._restore_middle(middle)
        self._update_zoom_label()

    def _restore_middle(self, middle: float) -> None:
        bar = self.pdf_view.verticalScrollBar()
        bar.setValue(round(middle * (bar.maximum() + bar.pageStep()) - bar.pageStep() / 2))

    def zoom_in(self) -> None:
        self.set_zoom(self._effective_zoom() * ZOOM_STEP)

    def zoom_out(self) -> None:
        self.set_zoom(self._effective_zoom() / ZOOM_STEP)

    def fit_width(self) -> None:
        from PySide6.QtPdfWidgets import QPdfView

        bar = self.pdf_view.verticalScrollBar()
        extent = bar.maximum() + bar.pageStep()
        middle = (bar.value() + bar.pageStep() / 2) / extent if extent > 0 else 0.0
        self.pdf_view.setZoomMode(QPdfView.ZoomMode.FitToWidth)
        self._restore_middle(middle)
        self._update_zoom_label()

    def _update_page_label(self, *_args: object) -> None:
        count = self.page_count
        current = self.current_page + 1 if count else 0
        self.page_label.setText(f"Page {current} of {count}")
        self.page_label.setAccessibleName(self.page_label.text())
        self.previous_button.setEnabled(current > 1)
        self.next_button.setEnabled(current < count)

    def _update_zoom_label(self, *_args: object) -> None:
        from PySide6.QtPdfWidgets import QPdfView

        zoom = self._effective_zoom()
        self.zoom_label.setText(f"{round(zoom * 100)}%")
        self.zoom_out_button.setEnabled(zoom > MIN_ZOOM + 1e-6)
        self.zoom_in_button.setEnabled(zoom < MAX_ZOOM - 1e-6)
        self.fit_width_button.setEnabled(self.pdf_view.zoomMode() != QPdfView.ZoomMode.FitToWidth)

    def _page_key(self, event: QKeyEvent) -> bool:
        """Page Up/Down (and Ctrl+Home/End) move a whole page; True if handled."""
        key = event.key()
        mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if key == Qt.Key.Key_PageDown and mods == Qt.KeyboardModifier.NoModifier:
            self.next_page()
        elif key == Qt.Key.Key_PageUp and mods == Qt.KeyboardModifier.NoModifier:
            self.previous_page()
        elif key == Qt.Key.Key_Home and mods == Qt.KeyboardModifier.ControlModifier:
            self.go_to_page(0)
        elif key == Qt.Key.Key_End and mods == Qt.KeyboardModifier.ControlModifier:
            self.go_to_page(self.page_count - 1)
        else:
            return False
        return True

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if (
            event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and self._page_key(event)
        ):
            return True
        if event.type() == QEvent.Type.Resize and watched is self.pdf_view.viewport():
            self._update_zoom_label()
        return super().eventFilter(watched, event)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            self.pdf_view.setFocus(
                Qt.FocusReason.OtherFocusReason
            )  # keys scroll the letter at once

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        if not self._page_key(event):
            super().keyPressEvent(event)

    # ----- print -------------------------------------------------------------------------------------
    def _new_printer(self) -> QPrinter:
        from PySide6.QtGui import QPageLayout, QPageSize
        from PySide6.QtPrintSupport import QPrinter

        printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        printer.setDocName(self.result.filename)  # the spool shows this: reference and date only
        if self.page_count:
            size = self.document.pagePointSize(0)
            printer.setPageSize(
                QPageSize(size, QPageSize.Unit.Point, "", QPageSize.SizeMatchPolicy.FuzzyMatch)
            )
            printer.setPageOrientation(
                QPageLayout.Orientation.Portrait
                if size.height() >= size.width()
                else QPageLayout.Orientation.Landscape
            )
        return printer

    def print_letter(self, printer: QPrinter | None = None) -> bool:
        """Print every page (or the range chosen in the print dialog); True when printed.

        With `printer` given (tests, or a caller that configured one) no dialog is shown.
        """
        if self._discarded or self.page_count < 1:
            return False
        if printer is None:
            from PySide6.QtPrintSupport import QAbstractPrintDialog, QPrintDialog, QPrinterInfo

            if not QPrinterInfo.availablePrinterNames():
                dialogs.information(
                    self,
                    "No printer",
                    "No printer is set up on this computer. Ask your IT support to add one, or "
                    "use Save as… and print the signed letter from another computer.",
                )
                return False
            printer = self._new_printer()
            dialog = QPrintDialog(printer, self)
            dialog.setWindowTitle("Print referral letter")
            # A 'print to file' copy would be an unsigned raster PDF: electronic copies come
            # from Save as… / Save protected copy…, which keep the signature.
            dialog.setOption(QAbstractPrintDialog.PrintDialogOption.PrintToFile, False)
            dialog.setOption(QAbstractPrintDialog.PrintDialogOption.PrintPageRange, True)
            dialog.setOption(QAbstractPrintDialog.PrintDialogOption.PrintCurrentPage, True)
            dialog.setMinMax(1, self.page_count)
            if dialogs.exec_dialog(dialog) != QDialog.DialogCode.Accepted:
                return False
        pages = self._pages_to_print(printer)
        try:
            with busy_cursor():
                printed = self._paint_pages(printer, pages)
        except _PrintFailed as exc:
            dialogs.error(self, "Letter not printed", str(exc))
            return False
        try:
            self.session.letters.record_letter_event(
                self.result.letter_id, "letter_printed", {"pages": printed}
            )
        except StoreError as exc:
            dialogs.error(
                self,
                "Print not recorded",
                f"The letter was sent to the printer, but recording it "
                f"in the audit log failed: {exc}",
            )
            return False
        self.printed.emit(printed)
        self._status(f"Letter sent to the printer ({printed} page{'s' if printed != 1 else ''}).")
        return True

    def _pages_to_print(self, printer: QPrinter) -> list[int]:
        from PySide6.QtPrintSupport import QPrinter

        count = self.page_count
        mode = printer.printRange()
        if mode == QPrinter.PrintRange.CurrentPage:
            return [self.current_page]
        if mode == QPrinter.PrintRange.PageRange and printer.fromPage() > 0:
            first = max(1, printer.fromPage())
            last = min(count, printer.toPage() or count)
            return list(range(first - 1, last))
        return list(range(count))

    def _paint_pages(self, printer: QPrinter, pages: list[int]) -> int:
        """Render each page at the printer's resolution, on white, 1:1 on the paper."""
        if not pages:
            raise _PrintFailed("There are no pages in the range you chose.")
        printer.setFullPage(True)  # the letter has its own margins: print it at actual size
        device_dpi = printer.resolution()
        render_dpi = min(device_dpi, MAX_PRINT_DPI)
        painter = QPainter()
        if not painter.begin(printer):
            raise _PrintFailed(
                "The printer could not be started. Check it is switched on and connected, "
                "then try again."
            )
        try:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            paper = QRectF(printer.pageLayout().fullRectPixels(device_dpi))
            for index, page in enumerate(pages):
                if index and not printer.newPage():
                    raise _PrintFailed(
                        "The printer stopped accepting pages; check it and print again."
                    )
                points = self.document.pagePointSize(page)
                target = QSizeF(
                    points.width() * device_dpi / 72.0, points.height() * device_dpi / 72.0
                )
                if target.width() > paper.width() or target.height() > paper.height():
                    target.scale(
                        paper.size(), Qt.AspectRatioMode.KeepAspectRatio
                    )  # shrink to fit the paper
                pixels = QSize(
                    round(points.width() * render_dpi / 72.0),
                    round(points.height() * render_dpi / 72.0),
                )
                image = render_page_on_white(self.document, page, pixels)
                if image.isNull():
                    raise _PrintFailed(
                        f"Page {page + 1} could not be prepared for printing (not enough memory?)."
                    )
                x = paper.left() + (paper.width() - target.width()) / 2
                y = paper.top() + (paper.height() - target.height()) / 2
                painter.drawImage(QRectF(x, y, target.width(), target.height()), image)
                del image
        finally:
            painter.end()
        from PySide6.QtPrintSupport import QPrinter

        if printer.printerState() == QPrinter.PrinterState.Error:
            raise _PrintFailed("The printer reported an error; check it and print again.")
        return len(pages)

    # ----- save -------------------------------------------------------------------------------------
    def save_as(self) -> Path | None:
        """Ask where, then write the exact signed bytes (atomic, 0600, audited)."""
        if self._discarded:
            return None
        chosen = dialogs.get_save_file(
            self,
            "Save signed referral letter",
            _default_folder() / self.result.filename,
            PDF_FILTER,
        )
        if chosen is None:
            return None
        target = _with_pdf_suffix(chosen)
        try:
            with busy_cursor():
                written = self.session.letters.save_letter(self.result.letter_id, target)
        except StoreError as exc:
            dialogs.error(self, "Letter not saved", str(exc))
            return None
        self.saved.emit(written)
        self._status(f"Signed letter saved as {written.name}.")
        return written

    def save_protected_copy(self) -> Path | None:
        """Ask for a PDF password (twice) and the user's own password, make a signed AES-256
        copy, ask where, write it. The PDF password is never stored."""
        if self._discarded:
            return None
        dialog = ProtectedCopyDialog(self)
        data: bytes | None = None
        while data is None:
            if dialogs.exec_dialog(dialog) != QDialog.DialogCode.Accepted:
                return None
            try:
                with busy_cursor():
                    data = self.session.letters.protected_copy(
                        self.result.letter_id, dialog.login_password, dialog.pdf_password
                    )
            except WrongPasswordError as exc:
                dialogs.error(self, "Wrong password", str(exc))
                dialog.retry_login_password(str(exc))
            except StoreError as exc:
                dialogs.error(self, "Protected copy not made", str(exc))
                dialog.show_problem(str(exc))
        dialog.forget_passwords()
        suggested = _default_folder() / self.result.filename.replace(".pdf", "-protected.pdf")
        while True:
            chosen = dialogs.get_save_file(
                self, "Save password-protected copy", suggested, PDF_FILTER
            )
            if chosen is None:
                return None
            target = _with_pdf_suffix(chosen)
            try:
                from gpshare.services import save_file

                with busy_cursor():
                    save_file(target, data)
            except StoreError as exc:
                dialogs.error(
                    self, "Protected copy not saved", f"{exc} Choose another folder, or Cancel."
                )
                suggested = target
                continue
            break
        try:
            self.session.letters.record_letter_event(
                self.result.letter_id,
                "letter_exported",
                {"protected": True, "sha256": hashlib.sha256(data).hexdigest()},
            )
        except StoreError as exc:
            log.warning("protected copy written but not audited: %s", exc.__class__.__name__)
        self.protected_saved.emit(target)
        dialogs.information(
            self,
            "Protected copy saved",
            f"The password-protected letter was saved as {target.name}.\n\n"
            "Attach it to a secure email, and send the PDF password separately "
            "(for example by phone). gpshare has not kept the password.",
        )
        return target

    # ----- close / lock -------------------------------------------------------------------------------
    def record_sent(self) -> None:
        """Record the letter as sent (how, when, to whom) from the letter itself."""
        try:
            record = self.session.assessments.get_record(self.result.record_id, audit_view=False)
        except StoreError as exc:
            dialogs.error(self, "Record as sent", str(exc))
            return
        if record_sent(self.session, record, self) is not None:
            self._update_sent_button()
            self._status(letter_status_text(self.session.referrals.referral_state(record.id)))

    def _update_sent_button(self) -> None:
        try:
            state = self.session.referrals.referral_state(self.result.record_id)
        except StoreError:
            state = None
        self.sent_button.setVisible(state is not None and state.sent_at is None)

    def _status(self, text: str) -> None:
        """Confirm an action: in the main window's status bar, or beside the buttons."""
        self.status_label.setText(text)
        set_status = getattr(self.window(), "set_status", None)
        if callable(set_status) and self.window() is not self:
            set_status(text)

    def close_letter(self) -> None:
        """The Close button: drop the letter from memory and close (or leave the host page)."""
        self.discard()

    def discard(self) -> None:
        """Take the letter off screen and out of memory (also on lock)."""
        if self._discarded:
            return
        self._discarded = True
        lock = _lock_signal(self.parentWidget())
        if lock is not None:
            with contextlib.suppress(RuntimeError, TypeError):
                lock.disconnect(self.discard)
        self.document.close()
        self._pdf_buffer.close()
        self._pdf_bytes.clear()
        self.hide()
        self.closed.emit()
        if self.isWindow() and not self._closing:
            self.close()
        self.deleteLater()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        self._closing = True
        self.discard()
        super().closeEvent(event)


class _PrintFailed(Exception):
    """Printing could not be completed; the message is for the user."""


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ----- protected copy dialog ----------------------------------------------------------------------
class ProtectedCopyDialog(QDialog):
    """PDF password twice (must match) and the user's own gpshare password (to sign the copy).

    Checks run when OK is clicked; the dialog stays open with a message until they pass.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("letter.protected_dialog")
        self.setWindowTitle("Save a password-protected copy")
        self.pdf_password = ""
        self.login_password = ""
        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        intro = QLabel(
            "This makes a copy of the signed letter that can only be opened with a password you choose, "
            "for sending by secure email.<br><br>"
            "<b>gpshare never stores this password.</b> Send it to the recipient separately — by phone, "
            "or in a different message — never in the same email as the letter.",
            self,
        )
        intro.setWordWrap(True)
        intro.setProperty("role", "info")
        layout.addWidget(intro)

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        self.pdf_password_field = self._password_field("protected.pdf_password", "PDF password")
        self.pdf_password_again_field = self._password_field(
            "protected.pdf_password_again", "PDF password again"
        )
        self.login_password_field = self._password_field(
            "protected.login_password", "Your gpshare password"
        )
        form.addRow("&PDF password (at least 10 characters):", self.pdf_password_field)
        form.addRow("PDF password &again:", self.pdf_password_again_field)
        hint = QLabel(
            "Your own password is needed because your signing key is protected by it: the copy "
            "is signed again after it is encrypted.",
            self,
        )
        hint.setWordWrap(True)
        hint.setProperty("role", "hint")
        form.addRow(hint)
        form.addRow("&Your gpshare password:", self.login_password_field)
        layout.addLayout(form)

        self.error_label = QLabel(self)
        self.error_label.setObjectName("protected.error")
        self.error_label.setProperty("role", "fielderror")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        layout.addWidget(self.error_label)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.ok_button = self.buttons.addButton(
            "Make protected copy", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.ok_button.setObjectName("protected.ok")
        self.ok_button.setDefault(True)
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setObjectName(
            "protected.cancel"
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(540)
        self.resize(560, self.sizeHint().height())

    def _password_field(self, name: str, accessible: str) -> QLineEdit:
        field = QLineEdit(self)
        field.setObjectName(name)
        field.setEchoMode(QLineEdit.EchoMode.Password)
        field.setAccessibleName(accessible)
        field.textEdited.connect(lambda _t: self.error_label.hide())
        return field

    def validation_problem(self) -> tuple[str, QLineEdit] | None:
        first = self.pdf_password_field.text()
        second = self.pdf_password_again_field.text()
        login = self.login_password_field.text()
        if len(first) < MIN_PDF_PASSWORD:
            return (
                f"The PDF password must be at least {MIN_PDF_PASSWORD} characters; a short phrase is easiest "
                "to read out.",
                self.pdf_password_field,
            )
        if first != second:
            return (
                "The two PDF passwords do not match. Type the same password twice.",
                self.pdf_password_again_field,
            )
        if not login:
            return (
                "Type your own gpshare password so the copy can be signed.",
                self.login_password_field,
            )
        if login == first:
            return (
                "Do not use your gpshare password as the PDF password; choose a different one.",
                self.pdf_password_field,
            )
        return None

    def accept(self) -> None:
        problem = self.validation_problem()
        if problem is not None:
            self.show_problem(problem[0], problem[1])
            return
        self.pdf_password = self.pdf_password_field.text()
        self.login_password = self.login_password_field.text()
        super().accept()

    def show_problem(self, text: str, field: QLineEdit | None = None) -> None:
        self.error_label.setText(text)
        self.error_label.show()
        if field is not None:
            field.setFocus(Qt.FocusReason.OtherFocusReason)
            field.selectAll()

    def retry_login_password(self, text: str) -> None:
        self.login_password_field.clear()
        self.login_password = ""
        self.show_problem(text, self.login_password_field)

    def forget_passwords(self) -> None:
        for field in (
            self.pdf_password_field,
            self.pdf_password_again_field,
            self.login_password_field,
        ):
            field.clear()
        self.pdf_password = ""
        self.login_password = ""


# ----- opening a record's letter ------------------------------------------------------------------
def _show_as_window(view: LetterView) -> None:
    view.setWindowFlag(Qt.WindowType.Window, True)
    view.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    view.resize(1100, 800)
    view.show()
    view.raise_()
    view.activateWindow()
    view.pdf_view.setFocus(Qt.FocusReason.OtherFocusReason)


def open_letter_for_record(
    session: Session, record: Record | str, parent: QWidget | None = None, *, show: bool = True
) -> LetterView | None:
    """Open a record's latest letter, or sign one first; None when there is nothing to show.

    * no letter possible (draft, or a monitor decision): the reason is explained;
    * letters exist: the latest one opens (audited as a view);
    * none yet: the clinician who completed the record is asked for their password ("your
      signing key is protected by your password") and the letter is generated and signed.
      A wrong password is explained and asked again; Cancel stops.

    With `show` the view opens as its own window (child of `parent`'s window, closed on lock);
    otherwise the caller places it.
    """
    title = "Referral letter"
    try:
        if isinstance(record, str):
            record = session.assessments.get_record(record, audit_view=False)
        reason = session.letters.letter_unavailable_reason(record)
        if reason is not None:
            dialogs.information(parent, "No referral letter", reason)
            return None
        existing = session.letters.list_letters(record.id)
        result: LetterResult | None = None
        if existing:
            latest = max(existing, key=lambda m: m.id)
            with busy_cursor():
                result = session.letters.open_letter(latest.id)
        elif record.clinician != session.user.username:
            author = record.clinician_name or record.clinician
            dialogs.information(
                parent,
                "No referral letter yet",
                f"No letter has been signed for record {record.id} yet. Only the clinician who "
                f"completed the assessment ({author}) can sign it.",
            )
            return None
        else:
            result = _generate_with_password(session, record, parent)
            if result is None:
                return None
        view = LetterView(session, result, parent)
    except StoreError as exc:
        dialogs.error(parent, title, str(exc))
        return None
    if show:
        _show_as_window(view)
    return view


def _generate_with_password(
    session: Session, record: Record, parent: QWidget | None
) -> LetterResult | None:
    prompt = (
        f"To sign the referral letter for record {record.id}, type your gpshare password.\n\n"
        "Your signing key is protected by your password, so gpshare asks for it again before it "
        "signs anything in your name."
    )
    while True:
        password = dialogs.get_password(
            parent, "Sign the referral letter", prompt, ok_text="&Sign the letter"
        )
        if password is None:
            return None
        try:
            with busy_cursor():
                return session.letters.generate_letter(record.id, password)
        except WrongPasswordError as exc:
            dialogs.error(parent, "Wrong password", f"{exc} The letter has not been signed.")


# ----- letters panel --------------------------------------------------------------------------------
class LettersPanel(QWidget):
    """A record's signed letters (newest first) with Open — and Sign letter… when none exist.

    Embed it in the record detail view. Opened letters appear in their own window unless
    `show_in_window` is False, in which case connect :attr:`letter_opened` and place the view.
    `view`: the screen's record view (session.views.record_view), shown without reading the
    letters again; later refreshes read them.
    """

    letter_opened = Signal(object)  # LetterView

    def __init__(
        self,
        session: Session,
        record: Record | str,
        parent: QWidget | None = None,
        *,
        show_in_window: bool = True,
        view: RecordView | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("lettersPanel")
        self.session = session
        self.record: Record = (
            record
            if not isinstance(record, str)
            else session.assessments.get_record(record, audit_view=False)
        )
        self.show_in_window = show_in_window
        self.letters: list[LetterMeta] = []

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        heading = QLabel("Referral letters", self)
        heading.setProperty("heading", "h2")
        layout.addWidget(heading)
        self.hint_label = QLabel(self)
        self.hint_label.setObjectName("letters.hint")
        self.hint_label.setProperty("role", "hint")
        self.hint_label.setWordWrap(True)
        layout.addWidget(self.hint_label)

        self.table = QTableWidget(0, 3, self)
        self.table.setObjectName("letters.table")
        self.table.setAccessibleName("Signed letters")
        self.table.setHorizontalHeaderLabels(["Signed", "Signed by", "SHA-256"])
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.table.doubleClicked.connect(lambda _i: self.open_selected())
        self.table.itemSelectionChanged.connect(self._update_buttons)
        layout.addWidget(self.table)

        row = QHBoxLayout()
        self.open_button = QPushButton("&Open letter", self)
        self.open_button.setObjectName("letters.open")
        self.open_button.clicked.connect(self.open_selected)
        self.generate_button = QPushButton("&Sign letter…", self)
        self.generate_button.setObjectName("letters.generate")
        self.generate_button.setProperty("variant", "primary")
        self.generate_button.setToolTip(
            "Make and sign the referral letter (asks for your password)"
        )
        self.generate_button.clicked.connect(self.generate)
        row.addWidget(self.open_button)
        row.addWidget(self.generate_button)
        row.addStretch(1)
        layout.addLayout(row)
        layout.addStretch(1)
        self.refresh(view)

    def refresh(self, view: RecordView | None = None) -> None:
        """Reload the list (after signing, or when the record changed); from `view` if given."""
        try:
            self.letters = (
                list(view.letters)
                if view is not None
                else sorted(
                    self.session.letters.list_letters(self.record.id),
                    key=lambda m: m.id,
                    reverse=True,
                )
            )
        except StoreError as exc:
            self.letters = []
            self.hint_label.setText(str(exc))
        self.table.setRowCount(len(self.letters))
        for row, meta in enumerate(self.letters):
            cells = (
                _uk_time(meta.created),
                _signer_name(self.session, meta.signer, self.record),
                f"{meta.sha256[:16]}…",
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, meta.id)
                if column == 2:
                    item.setToolTip(meta.sha256)
                self.table.setItem(row, column, item)
        if self.letters:
            self.table.selectRow(0)
        reason = (
            view.letter_unavailable
            if view is not None
            else self.session.letters.letter_unavailable_reason(self.record)
        )
        if reason is not None:
            self.hint_label.setText(reason)
        elif not self.letters:
            self.hint_label.setText(
                "No letter has been signed for this record yet."
                if self.record.clinician == self.session.user.username
                else "No letter has been signed yet; only the clinician who completed the "
                "assessment can sign it."
            )
        else:
            self.hint_label.setText(
                "Letters are stored signed; opening one is recorded in the audit log."
            )
        self.table.setVisible(bool(self.letters))
        rows_height = sum(self.table.rowHeight(r) for r in range(min(len(self.letters), 6)))
        self.table.setFixedHeight(
            self.table.horizontalHeader().sizeHint().height()
            + rows_height
            + 2 * self.table.frameWidth()
            + 2
        )
        self.generate_button.setVisible(
            reason is None
            and not self.letters
            and self.record.clinician == self.session.user.username
        )
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.open_button.setVisible(bool(self.letters))
        self.open_button.setEnabled(self.selected_letter_id() is not None)

    def selected_letter_id(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return self.letters[rows[0].row()].id

    def open_selected(self) -> LetterView | None:
        letter_id = self.selected_letter_id()
        if letter_id is None:
            return None
        try:
            with busy_cursor():
                view = LetterView(self.session, letter_id, self)
        except StoreError as exc:
            dialogs.error(self, "Referral letter", str(exc))
            return None
        return self._opened(view)

    def generate(self) -> LetterView | None:
        view = open_letter_for_record(self.session, self.record, self, show=False)
        self.refresh()
        return self._opened(view) if view is not None else None

    def _opened(self, view: LetterView) -> LetterView:
        if self.show_in_window:
            _show_as_window(view)
        self.letter_opened.emit(view)
        return view


def _open_after_completion(window: Any, wizard: Any, record_id: str) -> None:
    """After an assessment is completed, show (signing first) its letter when it needs one."""
    session = getattr(window, "session", None)
    if session is None:
        return
    record = session.assessments.get_record(record_id, audit_view=False)
    if record.letter_required:
        open_letter_for_record(session, record, window)


def install(window: Any) -> None:
    """Plug into the app: the letter opens in the preview as soon as an assessment completes."""
    from gpshare.ui.events import add_completed_listener

    add_completed_listener(_open_after_completion)
