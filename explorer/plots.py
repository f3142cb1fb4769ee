"""Live plots: frames per second, step latency by stage, memory fill, PSNR against ground truth.

pyqtgraph's own advice for live data, followed here: every plot item is made once and
updated in place with setData from fixed-size ring buffers, and redrawing happens on
the plots' own timer (a few times a second), not once per model frame. Pushing a
sample is a couple of array writes, so the frame path stays cheap however fast frames
come.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QVBoxLayout, QWidget

from explorer.world_state import GT_LABEL, LABEL_OFF, LABEL_ON, FrameBundle

WINDOW_S = 60.0          # seconds of history shown
RING = 2048              # samples kept per series
STAGES = ("layout", "memory_read", "generator", "decode", "memory_write", "total")
COLORS = {
    "shown": (230, 230, 230), LABEL_ON: (130, 225, 140), LABEL_OFF: (245, 175, 95), GT_LABEL: (150, 195, 255),
    "layout": (120, 220, 220), "memory_read": (120, 170, 255), "generator": (255, 120, 120), "decode": (250, 210, 90),
    "memory_write": (190, 140, 255), "total": (235, 235, 235),
}


class Ring:
    """Fixed-size (time, value) ring buffer; `view()` returns the samples oldest first."""

    def __init__(self, n: int = RING) -> None:
        self.t = np.zeros(n)
        self.v = np.zeros(n)
        self.n, self.i, self.count = n, 0, 0

    def push(self, t: float, v: float) -> None:
        self.t[self.i], self.v[self.i] = t, v
        self.i = (self.i + 1) % self.n
        self.count = min(self.count + 1, self.n)

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        if self.count < self.n:
            return self.t[:self.count], self.v[:self.count]
        return np.roll(self.t, -self.i), np.roll(self.v, -self.i)

    def clear(self) -> None:
        self.i = self.count = 0


class _Panel:
    """One plot with a curve per series; a curve is created the first time its series appears."""

    def __init__(self, plot: pg.PlotItem) -> None:
        self.plot = plot
        self.rings: dict[str, Ring] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}

    def push(self, name: str, t: float, v: float) -> None:
        if not math.isfinite(v):
            return
        if name not in self.rings:
            self.rings[name] = Ring()
            self.curves[name] = self.plot.plot([], [], name=name, pen=pg.mkPen(COLORS.get(name, (200, 200, 200)),
                                                                                width=1.5))
        self.rings[name].push(t, v)

    def refresh(self, now: float) -> None:
        for name, ring in self.rings.items():
            t, v = ring.view()
            keep = t >= now - WINDOW_S
            self.curves[name].setData(t[keep] - now, v[keep])

    def clear(self) -> None:
        for ring in self.rings.values():
            ring.clear()


class LivePlots(QWidget):
    def __init__(self, parent: QWidget | None = None, clock: Callable[[], float] = time.monotonic,
                 interval_ms: int = 250) -> None:
        super().__init__(parent)
        self.clock = clock
        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground((24, 24, 28))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self.panels: dict[str, _Panel] = {}
        for row, (key, title, unit) in enumerate((("fps", "frames / s", ""), ("latency", "step latency by stage", "ms"),
                                                  ("memory", "memory fill", "%"),
                                                  ("psnr", "PSNR vs ground truth", "dB"))):
            plot = self.view.addPlot(row=row, col=0, title=title)
            plot.addLegend(offset=(4, 4), labelTextSize="7pt", colCount=3)
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setLabel("left", units=unit)
            plot.setXRange(-WINDOW_S, 0, padding=0)
            plot.setMouseEnabled(x=False, y=True)
            plot.getAxis("bottom").setStyle(showValues=row == 3)
            self.panels[key] = _Panel(plot)
        self.panels["memory"].plot.setYRange(0, 100)
        self.samples = 0
        self._dirty = False
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(interval_ms)

    def push(self, bundle: FrameBundle, shown_fps: float) -> None:
        """Record one shown bundle; drawn at the next timer tick."""
        t = self.clock()
        self.panels["fps"].push("shown", t, shown_fps)
        for i, pane in enumerate(bundle.panes):
            if pane.observed:
                continue   # an observation is an encode, not a generated step: it would skew every series
            self.panels["fps"].push(pane.label, t, pane.fps)
            if i == 0:
                for stage in STAGES:
                    if stage in pane.timings:
                        self.panels["latency"].push(stage, t, pane.timings[stage])
            if pane.memory:
                self.panels["memory"].push(pane.label, t, 100.0 * pane.memory.get("fill", float("nan")))
            if pane.psnr is not None:
                self.panels["psnr"].push(pane.label, t, pane.psnr)
        self.samples += 1
        self._dirty = True

    def refresh(self) -> None:
        if not self._dirty:
            return
        now = self.clock()
        for panel in self.panels.values():
            panel.refresh(now)
        self._dirty = False

    def clear(self) -> None:
        """A new world or model: old numbers would mislead."""
        for panel in self.panels.values():
            panel.clear()
        self._dirty = True

    def series(self, panel: str, name: str) -> np.ndarray:
        """Values recorded for one series (tests and diagnostics)."""
        ring = self.panels[panel].rings.get(name)
        return ring.view()[1].copy() if ring is not None else np.zeros(0)
