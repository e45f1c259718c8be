"""Work around a reference-counting bug of the PySide6 6.12 wheels on CPython 3.11.

The PySide6/shiboken6 6.12 wheels (abi3) return ``None`` from every void method and from
null/invalid results (``setText``, ``setHidden``, ``property()`` of an unset property,
``parentWidget()`` of a window…) **without taking a reference**, and ``Signal.emit()``
returns ``True`` the same way. From CPython 3.12 these objects are immortal and nothing
happens; on 3.11 each call lowers their reference count by one, and after a few thousand
calls (``True`` starts at ~160!) the interpreter aborts with ``Fatal Python error:
none_dealloc / bool_dealloc``.

Reproduce (Python 3.11, PySide6 6.12.0)::

    import sys; from PySide6.QtCore import QObject
    o = QObject(); before = sys.getrefcount(None)
    for _ in range(100): o.setObjectName("x")
    print(sys.getrefcount(None) - before)   # -100: one reference lost per call

``install()`` gives ``None``, ``True`` and ``False`` an enormous reference-count headroom so
they can never reach zero. They are static singletons that CPython never frees, so the only
effect is that the abort cannot happen. It does nothing on other interpreters or on 3.12+.
The real fix is Python 3.12+ or a PySide6 build without the bug; call this once at start-up
— gpshare/ui/__init__.py does, so every Qt entry point is covered.
"""

from __future__ import annotations

import sys

_HEADROOM = 1 << 40  # ~10^12 lost references before anything could go wrong


def needed() -> bool:
    """True on the interpreters where the leaked references can reach zero."""
    return (
        sys.implementation.name == "cpython"
        and sys.version_info < (3, 12)
        and not hasattr(sys, "gettotalrefcount")  # debug builds have a different layout
    )


def install() -> bool:
    """Top up the reference counts of None, True and False (idempotent). True if applied."""
    if not needed():
        return False
    import ctypes

    for singleton in (None, True, False):
        refcount = ctypes.c_ssize_t.from_address(id(singleton))  # ob_refcnt is the first field
        if refcount.value < _HEADROOM // 2:
            refcount.value += _HEADROOM
    return True
