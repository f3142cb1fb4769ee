"""Python's cyclic garbage collector, run on the GUI thread only while a window is open.

Automatic collection runs in whichever thread happens to allocate when a threshold is
crossed. While the explorer is open that is often the inference worker or the
recorder's writer thread, and if the garbage then holds Qt objects (a closed dialog, a
menu, a window caught in a reference cycle), their C++ destructors run in that thread.
Shiboken hands widget deletion to the GUI thread while the collecting thread holds a
Qt mutex and the GUI thread holds the GIL: both wait for ever. The test suite met
exactly that (a worker thread collecting an earlier test's window froze the run).

So while any window is open, automatic collection is off, and a timer on the GUI
thread collects each generation when its count passes the interpreter's own threshold.
That is the same schedule as automatic collection, checked a few times a second on the
thread Qt wants. Reference counting, which frees almost everything, is unaffected.
"""
from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

CHECK_MS = 250


class GuiThreadGC(QObject):
    """Install with `acquire()` when a window opens and `release()` when it closes (counted)."""

    _users = 0
    _instance: "GuiThreadGC | None" = None

    def __init__(self) -> None:
        super().__init__()
        self._thresholds = gc.get_threshold()
        self._timer = QTimer(self)
        self._timer.setInterval(CHECK_MS)
        self._timer.timeout.connect(self.check)

    @classmethod
    def acquire(cls) -> None:
        """Called on the GUI thread. The first user collects once (leftovers of earlier windows
        go here, not in a worker) and turns automatic collection off."""
        if cls._instance is None:
            cls._instance = GuiThreadGC()
        cls._users += 1
        if cls._users == 1:
            gc.collect()
            gc.disable()
            cls._instance._timer.start()

    @classmethod
    def release(cls) -> None:
        """Called on the GUI thread once that window's threads have stopped."""
        if cls._users == 0:
            return
        cls._users -= 1
        if cls._users == 0 and cls._instance is not None:
            cls._instance._timer.stop()
            gc.enable()

    def check(self) -> None:
        counts = gc.get_count()
        # Oldest first: collecting a generation also collects the younger ones.
        for gen in (2, 1, 0):
            if self._thresholds[gen] and counts[gen] > self._thresholds[gen]:
                gc.collect(gen)
                return
