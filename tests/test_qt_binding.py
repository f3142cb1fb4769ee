"""The installed Qt binding keeps Python's reference counts: PySide6 6.12.0 dropped a reference
to None and to True/False on every signal emit, and the explorer (a few signals a frame) aborted
with "deallocating None" after a few hundred frames. pyproject.toml keeps that version out; this
test fails on any binding with the same defect."""
from __future__ import annotations

import sys

from PySide6.QtCore import QCoreApplication, QObject, Signal


class _Emitter(QObject):
    bare = Signal()
    payload = Signal(object)
    pair = Signal(str, str)


def test_signal_emits_keep_the_reference_counts_of_none_and_booleans():
    app = QCoreApplication.instance() or QCoreApplication([])
    e = _Emitter()
    got = []
    e.bare.connect(lambda: got.append(1))
    e.payload.connect(got.append)
    e.pair.connect(lambda a, b: got.append(a))
    for _ in range(10):   # warm-up: caches and interned objects settle
        e.bare.emit()
    before = (sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False))
    for i in range(500):
        e.bare.emit()
        e.payload.emit(i)
        e.pair.emit("a", "b")
        app.processEvents()
    after = (sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False))
    assert len(got) == 10 + 1500
    # A few references may come and go elsewhere; 500 emits of each kind leaking one each would be -1500.
    assert all(abs(a - b) < 100 for a, b in zip(after, before)), (before, after)
