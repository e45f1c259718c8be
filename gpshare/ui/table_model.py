"""A read-only table model over a Python list: subclasses say what each cell shows."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt


class ItemTableModel(QAbstractTableModel):
    """Rows are items of a list, columns are :attr:`headers`; :meth:`cell` gives the data."""

    headers: tuple[str, ...] = ()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._items: list[Any] = []

    def cell(self, item: Any, column: int, role: int) -> Any:
        """What `column` of `item` shows for `role` (None for nothing)."""
        raise NotImplementedError

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._items)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.headers)

    def headerData(  # noqa: N802
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.headers[section]
        return None

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._items):
            return None
        return self.cell(self._items[index.row()], index.column(), role)

    def item(self, row: int) -> Any:
        """The item shown in `row`, or None."""
        return self._items[row] if 0 <= row < len(self._items) else None

    @property
    def loaded(self) -> int:
        return len(self._items)
