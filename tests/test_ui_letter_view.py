"""The letter view through the UI: preview, print, save, protected copy, opening a record's letter."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QLineEdit, QPushButton, QWidget

from gpshare.store import files
from gpshare.store.errors import StorageWriteError
from gpshare.store.sqlcipher import repositories as repo
from gpshare.ui import dialogs
from gpshare.ui.letter_view import (
    LettersPanel,
    LetterView,
    ProtectedCopyDialog,
    open_letter_for_record,
)
from tests import pdftools
from tests.conftest import PASSWORDS, SCENARIOS
from tests.storehelp import raw_connection

needs_poppler = pdftools.needs("pdftotext", "pdfinfo")
PDF_PASSWORD = "blue heron at dawn"


pytestmark = pytest.mark.usefixtures("quiet_dialogs")


def completed(session, name: str):
    path = SCENARIOS / f"{name}.json"
    rec = session.assessments.start_assessment(answers=json.loads(path.read_text())["answers"])
    done, _ = session.assessments.complete(rec.id)
    return done


@pytest.fixture
def letter01(smith):
    record = completed(smith, "01-bruised-toddler-parents-agree")
    return record, smith.letters.generate_letter(record.id, PASSWORDS["drsmith"])


@pytest.fixture
def view(qtbot, smith, letter01) -> LetterView:
    _record, result = letter01
    widget = LetterView(smith, result.letter_id)
    qtbot.addWidget(widget)
    widget.resize(1100, 800)
    widget.show()
    return widget


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An empty folder for the files the view writes (tmp_path also holds the vault)."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def events(session, action: str) -> list:
    return repo.audit_events(raw_connection(session), repo.AuditFilter(action=action), None, 0)


def child(widget: QWidget, cls: type, name: str):
    found = widget.findChild(cls, name)
    assert found is not None, name
    return found


def click(widget: QWidget, name: str) -> None:
    child(widget, QPushButton, name).click()


def fill_protected(first: str, second: str, login: str, seen: dict | None = None):
    def handler(dialog: ProtectedCopyDialog) -> None:
        child(dialog, QLineEdit, "protected.pdf_password").setText(first)
        child(dialog, QLineEdit, "protected.pdf_password_again").setText(second)
        child(dialog, QLineEdit, "protected.login_password").setText(login)
        click(dialog, "protected.ok")
        if seen is not None:
            seen["error"] = child(dialog, QLabel, "protected.error").text()
            seen["open"] = dialog.isVisible()

    return handler


# ----- preview -----------------------------------------------------------------------------------------
@needs_poppler
@pytest.mark.parametrize(
    "name", ["01-bruised-toddler-parents-agree", "02-teen-sexual-health-refuses"]
)
def test_preview_shows_every_page_and_the_signature_header(qtbot, smith, name):
    record = completed(smith, name)
    result = smith.letters.generate_letter(record.id, PASSWORDS["drsmith"])
    view = LetterView(smith, result.letter_id)
    qtbot.addWidget(view)
    view.resize(1100, 800)
    view.show()
    pages = int(pdftools.pdfinfo(result.pdf)["Pages"])
    assert pages >= 2
    assert view.page_count == pages
    assert view.page_label.text() == f"Page 1 of {pages}"
    assert record.id in view.title_label.text()
    assert (
        "Dr Alex Smith" in view.signer_label.text()
        and "25 Nov 2026, 10:00" in view.signer_label.text()
    )
    assert view.signature_label.text() == f"✔ Digitally signed — SHA-256 {result.sha256[:16]}…"
    assert [e.details["letter_id"] for e in events(smith, "letter_opened")] == [result.letter_id]


def test_page_keys_and_zoom(qtbot, view):
    qtbot.waitUntil(lambda: view.pdf_view.verticalScrollBar().maximum() > 0)
    assert view.pdf_view.hasFocus() or view.pdf_view.isVisible()
    # The v2 letter's length depends on the answers; the keys must walk the real pages.
    pages = view.page_count
    assert pages >= 2
    qtbot.keyClick(view.pdf_view, Qt.Key.Key_PageDown)
    assert view.current_page == 1 and view.page_label.text() == f"Page 2 of {pages}"
    assert child(view, QPushButton, "letter.next_page").isEnabled() is (pages > 2)
    qtbot.keyClick(view.pdf_view, Qt.Key.Key_PageUp)
    assert view.current_page == 0 and view.page_label.text() == f"Page 1 of {pages}"
    fit = view.zoom_label.text()
    click(view, "letter.zoom_in")
    assert int(view.zoom_label.text().rstrip("%")) > int(fit.rstrip("%"))
    assert child(view, QPushButton, "letter.fit_width").isEnabled()
    click(view, "letter.zoom_out")
    click(view, "letter.zoom_out")
    assert int(view.zoom_label.text().rstrip("%")) < int(fit.rstrip("%"))
    click(view, "letter.fit_width")
    assert view.zoom_label.text() == fit


def test_pdf_bytes_never_touch_a_temp_file(view, letter01):
    _record, result = letter01
    assert view._pdf_buffer.data().data() == result.pdf  # fed from memory
    assert view.document.status().name == "Ready"


# ----- print -------------------------------------------------------------------------------------------
@needs_poppler
def test_print_to_pdf_printer_prints_every_page_on_white_and_is_audited(view, smith, letter01, out):
    from PySide6.QtPdf import QPdfDocument
    from PySide6.QtPrintSupport import QPrinter

    _record, result = letter01
    printed_file = out / "printed.pdf"
    printer = QPrinter(QPrinter.PrinterMode.HighResolution)
    printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
    printer.setOutputFileName(str(printed_file))
    printer.setResolution(150)
    with_signal = []
    view.printed.connect(with_signal.append)
    assert view.print_letter(printer) is True
    pages = int(pdftools.pdfinfo(result.pdf)["Pages"])
    assert int(pdftools.pdfinfo(printed_file.read_bytes())["Pages"]) == view.page_count == pages
    assert with_signal == [pages]
    printed = events(smith, "letter_printed")
    assert [(e.details["letter_id"], e.details["pages"]) for e in printed] == [
        (result.letter_id, pages)
    ]
    # the raster page is white paper with dark text on it, not a transparent or blank page
    document = QPdfDocument()
    document.load(str(printed_file))
    image = document.render(0, document.pagePointSize(0).toSize())
    document.close()
    corner = image.pixelColor(3, 3)
    assert (corner.red(), corner.green(), corner.blue(), corner.alpha()) == (255, 255, 255, 255)
    dark = sum(
        1
        for x in range(0, image.width(), 3)
        for y in range(0, image.height(), 3)
        if image.pixelColor(x, y).lightness() < 100
    )
    assert dark > 200


def test_print_button_without_a_printer_explains(view, smith, monkeypatch):
    from PySide6.QtPrintSupport import QPrinterInfo

    monkeypatch.setattr(QPrinterInfo, "availablePrinterNames", staticmethod(lambda: []))
    click(view, "letter.print")
    assert "No printer is set up" in dialogs.last_shown("information").text
    assert events(smith, "letter_printed") == []


# ----- save as -----------------------------------------------------------------------------------------
def test_save_as_writes_exactly_the_signed_bytes_privately_and_is_audited(
    view, smith, letter01, out
):
    _record, result = letter01
    target = out / "chosen-name"  # no suffix typed: .pdf is added
    dialogs.set_next_answer(target)
    click(view, "letter.save")
    prompt = dialogs.last_shown("save_file")
    assert Path(prompt.text).name == result.filename
    assert "Marsh" not in result.filename and "Ellie" not in result.filename
    written = out / "chosen-name.pdf"
    assert hashlib.sha256(written.read_bytes()).hexdigest() == result.sha256
    assert stat.S_IMODE(os.stat(written).st_mode) == 0o600
    saved = events(smith, "letter_saved")
    assert [(e.details["letter_id"], e.details["sha256"]) for e in saved] == [
        (result.letter_id, result.sha256)
    ]
    assert sorted(p.name for p in out.iterdir()) == ["chosen-name.pdf"]


def test_save_as_cancelled_writes_nothing(view, smith, out):
    dialogs.set_next_answer(None)
    click(view, "letter.save")
    assert list(out.iterdir()) == []
    assert events(smith, "letter_saved") == []


def test_save_to_unwritable_folder_shows_the_message_and_writes_nothing(
    view, smith, out, monkeypatch
):
    message = (
        f"gpshare is not allowed to write in {out} (read-only or no permission). "
        "Choose another folder or ask your IT support to grant write access."
    )

    def refuse(path: Path, data: bytes) -> None:
        raise StorageWriteError(message)

    monkeypatch.setattr(files, "atomic_write", refuse)
    dialogs.set_next_answer(out / "letter.pdf")
    click(view, "letter.save")
    shown = dialogs.last_shown("error")
    assert shown.title == "Letter not saved" and shown.text == message
    assert list(out.iterdir()) == []
    assert events(smith, "letter_saved") == []


# ----- protected copy ----------------------------------------------------------------------------------
def test_protected_copy_mismatched_passwords_refused_before_the_service(
    view, smith, monkeypatch, out
):
    calls = []
    monkeypatch.setattr(smith.letters, "protected_copy", lambda *a: calls.append(a) or b"")
    seen: dict = {}
    dialogs.set_next_dialog_handler(
        fill_protected(PDF_PASSWORD, PDF_PASSWORD + "x", PASSWORDS["drsmith"], seen)
    )
    click(view, "letter.save_protected")
    assert calls == []
    assert "do not match" in seen["error"] and seen["open"] is True
    assert dialogs.last_shown("dialog").answer == 0
    assert dialogs.last_shown("save_file") is None
    assert list(out.iterdir()) == []


def test_protected_copy_short_password_refused_before_the_service(view, smith, monkeypatch):
    calls = []
    monkeypatch.setattr(smith.letters, "protected_copy", lambda *a: calls.append(a) or b"")
    seen: dict = {}
    dialogs.set_next_dialog_handler(fill_protected("short", "short", PASSWORDS["drsmith"], seen))
    click(view, "letter.save_protected")
    assert calls == [] and "at least 10 characters" in seen["error"]


@needs_poppler
def test_protected_copy_is_encrypted_private_and_audited(view, smith, letter01, out):
    _record, result = letter01
    # a wrong gpshare password is explained and the dialog comes back for another try
    seen: dict = {}
    dialogs.set_next_dialog_handler(fill_protected(PDF_PASSWORD, PDF_PASSWORD, "not-my-password"))

    def again(dialog: ProtectedCopyDialog) -> None:
        seen["kept"] = child(dialog, QLineEdit, "protected.pdf_password").text()
        seen["login"] = child(dialog, QLineEdit, "protected.login_password").text()
        fill_protected(PDF_PASSWORD, PDF_PASSWORD, PASSWORDS["drsmith"])(dialog)

    dialogs.set_next_dialog_handler(again)
    target = out / "protected.pdf"
    dialogs.set_next_answer(target)
    click(view, "letter.save_protected")
    assert (
        "not your current password" in [s for s in dialogs.history() if s.kind == "error"][0].text
    )
    assert seen == {"kept": PDF_PASSWORD, "login": ""}
    assert dialogs.last_shown("save_file").text.endswith(
        result.filename.replace(".pdf", "-protected.pdf")
    )
    data = target.read_bytes()
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert data != result.pdf
    locked = subprocess.run(
        ["pdftotext", str(target), "-"], capture_output=True, text=True, check=False
    )
    assert locked.returncode != 0
    opened = subprocess.run(
        ["pdftotext", "-upw", PDF_PASSWORD, str(target), "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert opened.returncode == 0 and "Safeguarding referral" in opened.stdout
    assert "password-protected letter was saved" in dialogs.last_shown("information").text
    assert [e.details["letter_id"] for e in events(smith, "letter_protected_copy")] == [
        result.letter_id
    ]
    exported = events(smith, "letter_exported")
    assert exported[0].details == {
        "letter_id": result.letter_id,
        "protected": True,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert PDF_PASSWORD not in json.dumps(
        [e.details for e in repo.audit_events(raw_connection(smith), repo.AuditFilter())]
    )


def test_protected_copy_write_failure_asks_for_another_place(view, smith, out, monkeypatch):
    real = files.atomic_write
    attempts = []

    def first_fails(path: Path, data: bytes) -> None:
        attempts.append(path)
        if len(attempts) == 1:
            raise StorageWriteError(
                f"The disk holding {path.parent} is full. Free some space and try again; "
                "nothing was changed."
            )
        real(path, data)

    monkeypatch.setattr(files, "atomic_write", first_fails)
    dialogs.set_next_dialog_handler(
        fill_protected(PDF_PASSWORD, PDF_PASSWORD, PASSWORDS["drsmith"])
    )
    dialogs.set_next_answer(out / "full.pdf")
    dialogs.set_next_answer(out / "elsewhere.pdf")
    click(view, "letter.save_protected")
    assert "disk holding" in dialogs.last_shown("error").text
    assert sorted(p.name for p in out.iterdir()) == ["elsewhere.pdf"]


# ----- opening a record's letter ---------------------------------------------------------------------
def test_monitor_record_explains_there_is_no_letter(qtbot, smith):
    record = completed(smith, "03-low-level-concern-monitor")
    assert open_letter_for_record(smith, record, None, show=False) is None
    shown = dialogs.last_shown("information")
    assert shown.title == "No referral letter" and "no referral letter" in shown.text
    assert dialogs.last_shown("password") is None
    assert smith.letters.list_letters(record.id) == []


def test_wrong_password_then_right_password_generates_the_letter(qtbot, smith):
    record = completed(smith, "01-bruised-toddler-parents-agree")
    dialogs.set_next_answer("not-my-password")
    dialogs.set_next_answer(PASSWORDS["drsmith"])
    view = open_letter_for_record(smith, record, None, show=False)
    assert view is not None
    qtbot.addWidget(view)
    prompts = [s for s in dialogs.history() if s.kind == "password"]
    assert len(prompts) == 2 and "signing key is protected by your password" in prompts[0].text
    assert all(p.answer == "<hidden>" for p in prompts)
    assert dialogs.last_shown("error").title == "Wrong password"
    letters = smith.letters.list_letters(record.id)
    pages = int(pdftools.pdfinfo(view.result.pdf)["Pages"])
    assert len(letters) == 1 and view.result.letter_id == letters[0].id
    assert view.page_count == pages >= 2
    # a second time the stored letter opens without asking again
    again = open_letter_for_record(smith, record.id, None, show=False)
    assert again is not None
    qtbot.addWidget(again)
    assert again.result.sha256 == letters[0].sha256
    assert len([s for s in dialogs.history() if s.kind == "password"]) == 2


def test_cancelled_password_signs_nothing(smith):
    record = completed(smith, "01-bruised-toddler-parents-agree")
    dialogs.set_next_answer(None)
    assert open_letter_for_record(smith, record, None, show=False) is None
    assert smith.letters.list_letters(record.id) == []


def test_open_letter_for_record_shows_a_window(qtbot, smith, letter01):
    record, result = letter01
    host = QWidget()
    qtbot.addWidget(host)
    view = open_letter_for_record(smith, record, host)
    assert view is not None and view.isWindow() and view.isVisible()
    assert view.result.letter_id == result.letter_id
    view.close()


# ----- letters panel and lock --------------------------------------------------------------------------
def test_letters_panel_lists_and_opens(qtbot, smith, letter01):
    record, result = letter01
    panel = LettersPanel(smith, record, show_in_window=False)
    qtbot.addWidget(panel)
    assert panel.table.rowCount() == 1
    assert panel.table.item(0, 1).text() == "Dr Alex Smith"
    assert panel.table.item(0, 2).text() == f"{result.sha256[:16]}…"
    assert not panel.generate_button.isVisibleTo(panel)
    with qtbot.waitSignal(panel.letter_opened) as blocker:
        click(panel, "letters.open")
    opened = blocker.args[0]
    assert isinstance(opened, LetterView) and opened.result.letter_id == result.letter_id


def test_letters_panel_signs_a_letter_when_none_exists(qtbot, smith):
    record = completed(smith, "01-bruised-toddler-parents-agree")
    panel = LettersPanel(smith, record, show_in_window=False)
    qtbot.addWidget(panel)
    assert panel.table.rowCount() == 0 and panel.generate_button.isVisibleTo(panel)
    dialogs.set_next_answer(PASSWORDS["drsmith"])
    click(panel, "letters.generate")
    assert panel.table.rowCount() == 1 and not panel.generate_button.isVisibleTo(panel)


def test_letters_panel_on_monitor_record_explains(qtbot, smith):
    record = completed(smith, "03-low-level-concern-monitor")
    panel = LettersPanel(smith, record)
    qtbot.addWidget(panel)
    assert "no referral letter" in panel.hint_label.text()
    assert not panel.generate_button.isVisibleTo(panel) and not panel.open_button.isVisibleTo(panel)


class FakeMainWindow(QWidget):
    about_to_lock = Signal()


def test_letter_leaves_the_screen_when_the_app_locks(qtbot, smith, letter01):
    _record, result = letter01
    window = FakeMainWindow()
    qtbot.addWidget(window)
    view = LetterView(smith, result.letter_id, window)
    closed = []
    view.closed.connect(lambda: closed.append(True))
    window.show()
    assert view.isVisible()
    window.about_to_lock.emit()
    assert closed == [True] and not view.isVisible()
    assert view._pdf_bytes.isEmpty()


def test_close_button_discards_the_letter(qtbot, view):
    with qtbot.waitSignal(view.closed):
        click(view, "letter.close")
    assert not view.isVisible()


def test_bytes_that_do_not_match_the_stored_hash_are_flagged(qtbot, smith, letter01):
    from dataclasses import replace

    _record, result = letter01
    view = LetterView(smith, replace(result, sha256="0" * 64))
    qtbot.addWidget(view)
    assert not view.intact
    assert "does not match" in view.signature_label.text()
    assert "Digitally signed" not in view.signature_label.text()
