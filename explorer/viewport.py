"""The viewport: shows the composed panes crisply, plus the help overlay and notices.

Frames are tiny (64-256 px), so they are magnified by a whole number with nearest-pixel
sampling (export.compose does it, with labels drawn at the magnified size so text stays
sharp), centred, aspect kept. Only when the window is smaller than one pixel per pixel
does Qt scale down, smoothly. Keys and mouse are forwarded to the window as events;
this widget knows no bindings (explorer/keymap.py does).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from PySide6.QtCore import QPoint, QRect, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QCursor,
    QFont,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
)
from PySide6.QtWidgets import QWidget

from explorer import keymap


class Viewport(QWidget):
    look = Signal(float, float)          # mouse delta in pixels while dragging or captured
    capture_changed = Signal(bool)
    resized = Signal()                   # the window re-composes at the new magnification

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(320, 240)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.key_handler: Callable[[QKeyEvent, bool], bool] | None = None
        self._image: QImage | None = None
        self._array: np.ndarray | None = None       # keeps the QImage's memory alive
        self._pane_text: list[tuple[QRect, str]] = []
        self.help_visible = False
        self.notice = ""                             # e.g. errors and fallbacks, shown on top
        self.notice_level = "info"
        self.badge = ""                              # e.g. PAUSED, REC
        self.captured = False
        self._drag: QPoint | None = None

    # ---- content ----------------------------------------------------------------------
    def fit_scale(self, size: tuple[int, int]) -> int:
        """Largest whole magnification at which an image of `size` (w, h) fits; at least 1."""
        w, h = size
        return max(1, min(16, self.width() // max(w, 1), self.height() // max(h, 1)))

    def set_image(self, rgb: np.ndarray, pane_text: list[tuple[tuple[int, int, int, int], str]] = ()) -> None:
        """Show an RGB uint8 image; pane_text: ((x, y, w, h) in image pixels, text) drawn on top."""
        a = np.ascontiguousarray(rgb)
        h, w = a.shape[:2]
        self._array = a
        self._image = QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888)
        self._pane_text = [(QRect(*r), t) for r, t in pane_text]
        self.update()

    def image_array(self) -> np.ndarray | None:
        return self._array

    def image_rect(self) -> QRect:
        if self._image is None:
            return QRect()
        iw, ih = self._image.width(), self._image.height()
        if iw <= self.width() and ih <= self.height():
            w, h = iw, ih
        else:  # window smaller than the image: shrink, aspect kept
            k = min(self.width() / iw, self.height() / ih)
            w, h = max(1, int(iw * k)), max(1, int(ih * k))
        return QRect((self.width() - w) // 2, (self.height() - h) // 2, w, h)

    # ---- painting ---------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(16, 16, 20))
        if self._image is not None:
            r = self.image_rect()
            smooth = r.width() < self._image.width()
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
            p.drawImage(r, self._image)
            self._draw_pane_text(p, r)
        else:
            p.setPen(QColor(200, 200, 200))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "loading the model and the world…")
        if self.badge:
            self._draw_badge(p)
        if self.notice:
            self._draw_notice(p)
        if self.help_visible:
            self._draw_help(p)
        elif self.captured:
            p.setPen(QColor(230, 230, 230))
            p.drawText(self.rect().adjusted(0, 0, 0, -8), Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignHCenter,
                       "free look: move the mouse to look around, Esc releases")
        p.end()

    def _draw_pane_text(self, p: QPainter, r: QRect) -> None:
        if not self._pane_text:
            return
        kx, ky = r.width() / self._image.width(), r.height() / self._image.height()
        p.setFont(QFont(self.font().family(), 9))
        for rect, text in self._pane_text:
            box = QRect(int(r.x() + rect.x() * kx), int(r.y() + rect.y() * ky), int(rect.width() * kx),
                        int(rect.height() * ky))
            fm = p.fontMetrics()
            tw = fm.horizontalAdvance(text) + 8
            label = QRect(box.right() - tw - 2, box.top() + 2, tw, fm.height() + 2)
            p.fillRect(label, QColor(0, 0, 0, 150))
            p.setPen(QColor(240, 240, 240))
            p.drawText(label, Qt.AlignmentFlag.AlignCenter, text)

    def _draw_badge(self, p: QPainter) -> None:
        p.setFont(QFont(self.font().family(), 11, QFont.Weight.Bold))
        fm = p.fontMetrics()
        box = QRect(10, 10, fm.horizontalAdvance(self.badge) + 16, fm.height() + 8)
        p.fillRect(box, QColor(180, 30, 30, 200) if "REC" in self.badge else QColor(0, 0, 0, 170))
        p.setPen(QColor(255, 255, 255))
        p.drawText(box, Qt.AlignmentFlag.AlignCenter, self.badge)

    def _draw_notice(self, p: QPainter) -> None:
        color = {"error": QColor(150, 20, 20, 220), "warning": QColor(150, 90, 0, 220)}.get(
            self.notice_level, QColor(20, 20, 20, 200))
        p.setFont(QFont(self.font().family(), 10))
        box = QRect(10, self.height() - 70, self.width() - 20, 60)
        p.fillRect(box, color)
        p.setPen(QColor(255, 255, 255))
        p.drawText(box.adjusted(8, 4, -8, -4), Qt.AlignmentFlag.AlignVCenter | Qt.TextFlag.TextWordWrap, self.notice)

    def _draw_help(self, p: QPainter) -> None:
        rows = keymap.HELP_ROWS
        p.setFont(QFont(self.font().family(), 11))
        fm = p.fontMetrics()
        line = fm.height() + 4
        key_w = max(fm.horizontalAdvance(k) for k, _ in rows) + 24
        w = key_w + max(fm.horizontalAdvance(d) for _, d in rows) + 40
        h = line * (len(rows) + 2) + 16
        box = QRect((self.width() - w) // 2, max(8, (self.height() - h) // 2), w, h)
        p.fillRect(box, QColor(10, 10, 14, 225))
        p.setPen(QColor(255, 255, 255))
        p.drawText(box.x() + 20, box.y() + 8 + fm.ascent(), "Controls (F1 or ? closes)")
        for i, (keys, what) in enumerate(rows):
            y = box.y() + 8 + line * (i + 2) + fm.ascent() - line // 2
            p.setPen(QColor(140, 210, 255))
            p.drawText(box.x() + 20, y, keys)
            p.setPen(QColor(230, 230, 230))
            p.drawText(box.x() + 20 + key_w, y, what)

    # ---- input ------------------------------------------------------------------------
    def keyPressEvent(self, event: QKeyEvent) -> None:
        if not (self.key_handler and self.key_handler(event, True)):
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if not (self.key_handler and self.key_handler(event, False)):
            super().keyReleaseEvent(event)

    def set_captured(self, on: bool) -> None:
        """Free look: the cursor is hidden and kept in the middle, every movement turns."""
        if on == self.captured:
            return
        self.captured = on
        self.setMouseTracking(on)
        if on:
            self.setCursor(Qt.CursorShape.BlankCursor)
            self.grabMouse()
            QCursor.setPos(self.mapToGlobal(self.rect().center()))
        else:
            self.unsetCursor()
            self.releaseMouse()
        self.capture_changed.emit(on)
        self.update()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.setFocus()
        if event.button() == keymap.LOOK_BUTTON:
            self._drag = event.position().toPoint()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == keymap.LOOK_BUTTON:
            self._drag = None

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position().toPoint()
        if self.captured:
            centre = self.rect().center()
            d = pos - centre
            if d.x() or d.y():
                self.look.emit(float(d.x()), float(d.y()))
                QCursor.setPos(self.mapToGlobal(centre))   # recentre so the cursor never hits the screen edge
        elif self._drag is not None:
            d = pos - self._drag
            self._drag = pos
            self.look.emit(float(d.x()), float(d.y()))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.resized.emit()

    def focusOutEvent(self, event) -> None:
        self._drag = None
        super().focusOutEvent(event)
