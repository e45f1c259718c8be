"""One calm, professional look: NHS-like blues and greys, readable type, clear focus.

Widgets opt into variants with dynamic properties rather than object names, e.g.
``button.setProperty("variant", "primary")``, ``label.setProperty("role", "error")``,
``label.setProperty("heading", "h1")``. Colours follow the NHS identity palette; focus
uses the NHS yellow so keyboard users can always see where they are.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication, QWidget

BLUE = "#005EB8"
DARK_BLUE = "#003087"
BRIGHT_BLUE = "#0072CE"
PALE_BLUE = "#E8F1FA"
TEXT = "#212B32"
SECONDARY_TEXT = "#4C6272"
BORDER = "#768692"  # control edges: at least 3:1 against white (WCAG 1.4.11); see test_contrast
LIGHT_BORDER = "#D8DDE0"
PALE_GREY = "#F0F4F5"
RED = "#D5281B"
PALE_RED = "#FBEAE8"
GREEN = "#007F3B"
PALE_GREEN = "#E6F2EB"
FOCUS = "#FFEB3B"
WHITE = "#FFFFFF"

# Qt style sheets take file paths; forward slashes work on Windows too.
ICON_DIR = (Path(__file__).resolve().parent / "icons").as_posix()

STYLESHEET = f"""
QWidget {{
    color: {TEXT};
    font-size: 10pt;
}}
QMainWindow, QDialog {{
    background: {WHITE};
}}
QToolTip {{
    color: {WHITE};
    background: {TEXT};
    border: none;
    padding: 4px 6px;
}}

/* ---- headings and text roles ---- */
QLabel[heading="h1"] {{ font-size: 17pt; font-weight: 600; color: {TEXT}; }}
QLabel[heading="h2"] {{ font-size: 13pt; font-weight: 600; color: {TEXT}; }}
QLabel[role="hint"] {{ color: {SECONDARY_TEXT}; }}
QLabel[role="fielderror"] {{ color: {RED}; font-weight: 600; }}
QLabel[role="error"] {{
    color: {TEXT};
    background: {PALE_RED};
    border-left: 5px solid {RED};
    padding: 8px 10px;
}}
QLabel[role="success"] {{
    color: {TEXT};
    background: {PALE_GREEN};
    border-left: 5px solid {GREEN};
    padding: 8px 10px;
}}
QLabel[role="info"] {{
    color: {TEXT};
    background: {PALE_BLUE};
    border-left: 5px solid {BLUE};
    padding: 8px 10px;
}}
QLabel[role="marking"] {{
    color: {SECONDARY_TEXT};
    font-size: 9pt;
    font-weight: 600;
    letter-spacing: 1px;
}}

/* ---- inputs ---- */
QLineEdit, QPlainTextEdit, QTextEdit, QSpinBox, QComboBox, QDateEdit {{
    background: {WHITE};
    border: 2px solid {SECONDARY_TEXT};
    border-radius: 0px;
    padding: 4px 6px;
    min-height: 22px;
    selection-background-color: {BLUE};
    selection-color: {WHITE};
}}
QLineEdit:focus, QPlainTextEdit:focus, QTextEdit:focus, QSpinBox:focus, QComboBox:focus, QDateEdit:focus {{
    border: 2px solid {TEXT};
    background: #FFFDE7;
}}
QLineEdit:disabled, QPlainTextEdit:disabled, QComboBox:disabled {{
    color: {SECONDARY_TEXT};
    background: {PALE_GREY};
    border-color: {LIGHT_BORDER};
}}
QLineEdit[invalid="true"], QPlainTextEdit[invalid="true"], QComboBox[invalid="true"] {{
    border: 2px solid {RED};
}}
QLineEdit[secret="true"] {{
    font-family: "DejaVu Sans Mono", "Consolas", "Menlo", monospace;
    font-size: 15pt;
    letter-spacing: 1px;
    padding: 8px;
}}
QComboBox::drop-down {{ border: none; width: 24px; }}
QComboBox::down-arrow {{ image: url({ICON_DIR}/arrow-down.svg); width: 12px; height: 8px; }}
QComboBox QAbstractItemView {{
    border: 1px solid {BORDER};
    selection-background-color: {BLUE};
    selection-color: {WHITE};
}}
QCheckBox, QRadioButton {{ spacing: 8px; padding: 2px; border: 2px solid transparent; }}
QCheckBox:focus, QRadioButton:focus {{ background: {FOCUS}; border: 2px solid {TEXT}; }}
QCheckBox::indicator {{
    width: 18px; height: 18px;
    border: 2px solid {TEXT};
    background: {WHITE};
}}
QCheckBox::indicator:checked {{
    background: {BLUE};
    border: 2px solid {BLUE};
    image: url({ICON_DIR}/check.svg);
}}

/* ---- buttons ---- */
QPushButton {{
    background: {PALE_GREY};
    color: {TEXT};
    border: 1px solid {BORDER};
    border-bottom: 3px solid {BORDER};
    border-radius: 4px;
    padding: 6px 16px;
    min-height: 20px;
}}
QPushButton:hover {{ background: {LIGHT_BORDER}; }}
QPushButton:pressed {{ border-bottom-width: 1px; padding-top: 8px; }}
QPushButton:focus {{
    background: {FOCUS};
    color: {TEXT};
    border: 1px solid {TEXT};
    border-bottom: 3px solid {TEXT};
}}
QPushButton:disabled {{
    color: #768692;
    background: {PALE_GREY};
    border-color: {LIGHT_BORDER};
}}
QPushButton[variant="primary"] {{
    background: {GREEN};
    color: {WHITE};
    font-weight: 600;
    border: 1px solid #00401E;
    border-bottom: 3px solid #00401E;
}}
QPushButton[variant="primary"]:hover {{ background: #00662F; }}
QPushButton[variant="primary"]:focus {{
    background: {FOCUS};
    color: {TEXT};
    border: 1px solid {TEXT};
    border-bottom: 3px solid {TEXT};
}}
QPushButton[variant="primary"]:disabled {{
    background: #8FBDA3;
    color: {WHITE};
    border-color: #8FBDA3;
}}
QPushButton[variant="danger"] {{
    background: {RED};
    color: {WHITE};
    border: 1px solid #6B140E;
    border-bottom: 3px solid #6B140E;
}}
QPushButton[variant="danger"]:hover {{ background: #AA2016; }}
QPushButton[variant="danger"]:focus {{
    background: {FOCUS};
    color: {TEXT};
    border: 1px solid {TEXT};
    border-bottom: 3px solid {TEXT};
}}
QPushButton[variant="danger"]:disabled {{
    background: #EBB4AF;
    border-color: #EBB4AF;
}}
QPushButton[variant="link"] {{
    background: transparent;
    border: none;
    color: {BLUE};
    text-decoration: underline;
    padding: 2px 0px;
}}
QPushButton[variant="link"]:focus {{ background: {FOCUS}; color: {TEXT}; border: none; }}

/* ---- top bar ---- */
QFrame#topBar {{ background: {BLUE}; }}
QFrame#topBar QLabel {{ color: {WHITE}; }}
QLabel#brand, QFrame#unlockCard QLabel#brand {{
    background: {BLUE};
    color: {WHITE};
    font-size: 13pt;
    font-weight: 700;
    font-style: italic;
    padding: 2px 8px;
}}
QFrame#topBar QLabel#brand {{ background: {WHITE}; color: {BLUE}; }}
QFrame#topBar QLabel#practiceName {{ font-size: 12pt; font-weight: 600; }}
QFrame#topBar QLabel#userName {{ color: {WHITE}; }}
QFrame#topBar QPushButton {{
    background: transparent;
    color: {WHITE};
    border: 2px solid {WHITE};
    border-radius: 4px;
    padding: 4px 14px;
    font-weight: 600;
}}
QFrame#topBar QPushButton:hover {{ background: {DARK_BLUE}; }}
QFrame#topBar QPushButton:focus {{ background: {FOCUS}; color: {TEXT}; border-color: {FOCUS}; }}

/* ---- navigation ---- */
QFrame#navPanel {{
    background: {PALE_GREY};
    border-right: 1px solid {LIGHT_BORDER};
}}
QFrame#navPanel QLabel[role="navcaption"] {{
    color: {SECONDARY_TEXT};
    font-size: 9pt;
    font-weight: 600;
    padding: 4px 14px;
}}
QPushButton[nav="true"] {{
    text-align: left;
    background: transparent;
    border: none;
    border-left: 5px solid transparent;
    border-radius: 0px;
    padding: 10px 14px 10px 12px;
    color: {BLUE};
    font-weight: 600;
    min-height: 20px;
}}
QPushButton[nav="true"]:hover {{ background: {LIGHT_BORDER}; color: {DARK_BLUE}; }}
QPushButton[nav="true"]:checked {{
    background: {WHITE};
    color: {TEXT};
    border-left: 5px solid {BLUE};
}}
QPushButton[nav="true"]:focus {{ background: {FOCUS}; color: {TEXT}; border-left: 5px solid {TEXT}; }}

/* ---- unlock screen ---- */
QWidget#unlockScreen, QWidget#unlockInner {{ background: {PALE_GREY}; }}
QFrame#unlockCard {{
    background: {WHITE};
    border: 1px solid {LIGHT_BORDER};
    border-top: 6px solid {BLUE};
    border-radius: 2px;
}}
QFrame#unlockCard QLabel {{ background: transparent; }}

/* ---- pages, tabs, tables ---- */
QWidget[page="true"] {{ background: {WHITE}; }}
QTabWidget::pane {{
    border: 1px solid {LIGHT_BORDER};
    top: -1px;
    background: {WHITE};
}}
QTabBar::tab {{
    background: {PALE_GREY};
    color: {BLUE};
    border: 1px solid {LIGHT_BORDER};
    border-bottom: none;
    padding: 8px 18px;
    margin-right: 2px;
    font-weight: 600;
}}
QTabBar::tab:selected {{
    background: {WHITE};
    color: {TEXT};
    border-top: 4px solid {BLUE};
}}
QTabBar::tab:focus {{ background: {FOCUS}; color: {TEXT}; }}
QTableView, QTableWidget, QListView, QListWidget, QTreeView {{
    background: {WHITE};
    alternate-background-color: #F7F9FA;
    border: 1px solid {LIGHT_BORDER};
    gridline-color: {LIGHT_BORDER};
    selection-background-color: #C8DDF2;
    selection-color: {TEXT};
}}
QTableView:focus, QTableWidget:focus, QListView:focus, QListWidget:focus, QTreeView:focus {{
    border: 2px solid {TEXT};
}}
QHeaderView::section {{
    background: {PALE_GREY};
    color: {TEXT};
    font-weight: 600;
    border: none;
    border-bottom: 2px solid {BORDER};
    border-right: 1px solid {LIGHT_BORDER};
    padding: 6px 8px;
}}
QGroupBox {{
    border: 1px solid {LIGHT_BORDER};
    margin-top: 14px;
    padding: 12px 10px 10px 10px;
    font-weight: 600;
}}
QGroupBox::title {{ subcontrol-origin: margin; left: 10px; padding: 0 4px; }}

/* ---- chrome ---- */
QMenuBar {{ background: {WHITE}; border-bottom: 1px solid {LIGHT_BORDER}; }}
QMenuBar::item {{ padding: 4px 10px; background: transparent; }}
QMenuBar::item:selected {{ background: {PALE_BLUE}; }}
QMenu {{ background: {WHITE}; border: 1px solid {BORDER}; }}
QMenu::item {{ padding: 6px 24px 6px 20px; }}
QMenu::item:selected {{ background: {BLUE}; color: {WHITE}; }}
QMenu::item:disabled {{ color: #98A4AD; }}
QMenu::separator {{ height: 1px; background: {LIGHT_BORDER}; margin: 4px 8px; }}
QStatusBar {{
    background: {PALE_GREY};
    border-top: 1px solid {LIGHT_BORDER};
    color: {SECONDARY_TEXT};
}}
QStatusBar QLabel {{ color: {SECONDARY_TEXT}; padding: 0 6px; }}
QScrollArea {{ border: none; background: transparent; }}
"""


FUSION_ARGS = ("-style", "fusion")  # QApplication's own option (see apply)


def apply(app: QApplication, *, fusion_chosen: bool = False) -> None:
    """Give the whole application the gpshare look (Fusion base + stylesheet + palette).

    `fusion_chosen`: the QApplication was made with :data:`FUSION_ARGS`, so the style is
    not set again here: ``app.setStyle()`` returns a QStyle, and PySide builds that type
    (and its enums, ~5 ms) the first time, before the first paint (DESIGN §8)."""
    if not fusion_chosen:
        app.setStyle("Fusion")
    palette = app.palette()
    palette.setColor(QPalette.ColorRole.Window, QColor(WHITE))
    palette.setColor(QPalette.ColorRole.Base, QColor(WHITE))
    palette.setColor(QPalette.ColorRole.Text, QColor(TEXT))
    palette.setColor(QPalette.ColorRole.WindowText, QColor(TEXT))
    palette.setColor(QPalette.ColorRole.Highlight, QColor(BLUE))
    palette.setColor(QPalette.ColorRole.HighlightedText, QColor(WHITE))
    palette.setColor(QPalette.ColorRole.Link, QColor(BLUE))
    app.setPalette(palette)
    font = QFont(app.font())
    font.setPointSize(10)
    app.setFont(font)
    app.setStyleSheet(STYLESHEET)


def refresh(widget: QWidget) -> None:
    """Re-apply the stylesheet after changing a dynamic property used in a selector.

    unpolish()/polish() does not recompute padding and margins, so the widget's own style
    sheet is re-set (toggling a trailing space), which forces a full re-style.
    """
    sheet = widget.styleSheet()
    widget.setStyleSheet(sheet[:-1] if sheet.endswith(" ") else sheet + " ")
    widget.updateGeometry()
    widget.update()
