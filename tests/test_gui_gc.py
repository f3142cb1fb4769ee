"""Garbage cycles are collected on the GUI thread while a window is open (explorer/gui_gc.py)."""
from __future__ import annotations

import gc
import threading

from explorer.gui_gc import GuiThreadGC


class Probe:
    def __init__(self, seen: list) -> None:
        self.seen = seen
        self.me = self                       # a cycle: only the cyclic collector frees it

    def __del__(self) -> None:
        self.seen.append(threading.current_thread() is threading.main_thread())


def test_cycles_made_while_a_worker_allocates_are_freed_on_the_gui_thread(qtbot):
    keep: list = []
    GuiThreadGC.acquire()
    try:
        assert not gc.isenabled()
        seen: list[bool] = []
        Probe(seen)
        # Allocation pressure from another thread, as the inference worker makes: with automatic
        # collection on, this is where the cycle (and any Qt object in it) would be destroyed.
        t = threading.Thread(target=lambda: keep.extend([i] for i in range(5 * gc.get_threshold()[0])))
        t.start()
        t.join()
        assert seen == []                     # nothing collected in the worker
        qtbot.waitUntil(lambda: bool(seen), timeout=10_000)
        assert seen == [True]                 # the GUI thread's timer collected it
    finally:
        GuiThreadGC.release()
    assert gc.isenabled()


def test_counted_acquire_and_release(qtbot):
    GuiThreadGC.acquire()
    GuiThreadGC.acquire()
    GuiThreadGC.release()
    assert not gc.isenabled()                 # one window still open
    GuiThreadGC.release()
    assert gc.isenabled()
    GuiThreadGC.release()                     # an extra release (a window shut down twice) is harmless
    assert gc.isenabled()
