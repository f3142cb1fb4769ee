"""Side-by-side panes: memory on | memory off | ground truth (any subset), one layout everywhere.

The same function builds every frame of an exported clip and the GUI's compare view, so
the two always look alike. It is plain numpy + OpenCV drawing: deterministic (the same
inputs give the same bytes) and fast, because the static part (background, gaps, pane
labels) is drawn once per layout and cached; a frame costs a copy, the pane pastes and
one or two lines of overlay text.

    +--------------+--------------+--------------+
    |  memory on   |  memory off  | ground truth |   label bar
    |    pane 0    |    pane 1    |    pane 2    |   panes (equal size, `scale` x)
    | frame 12  generated   x +1.20  z -3.40  yaw +90.0 |   overlay bar (if overlay)
    +--------------------------------------------+

Panes are uint8 H x W x 3 RGB; a pane of another size is resized to the first pane's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

__all__ = ["Layout", "compose_panes", "layout", "PANE_MEMORY_ON", "PANE_MEMORY_OFF", "PANE_GROUND_TRUTH"]

PANE_MEMORY_ON, PANE_MEMORY_OFF, PANE_GROUND_TRUTH = "memory on", "memory off", "ground truth"
GAP = 2                                   # pixels between panes
BACKGROUND = (22, 22, 26)
TEXT = (235, 235, 235)
LABEL_COLORS = {PANE_MEMORY_ON: (130, 225, 140), PANE_MEMORY_OFF: (245, 175, 95), PANE_GROUND_TRUTH: (150, 195, 255)}
_FONT = cv2.FONT_HERSHEY_SIMPLEX
# Widest overlay fields a walk can produce: the overlay's height is fixed by these, never
# by the text of one frame, so every frame of a clip has the same size.
_WORST_FIELDS = ("frame 99999", "generated", "x -999.99", "z -999.99", "yaw -180.0")
_FIELD_SEP = "  "


@dataclass(frozen=True)
class Layout:
    panes: int
    pane_w: int                 # output pixels (input size times scale)
    pane_h: int
    label_h: int
    overlay_h: int              # 0 without an overlay
    font_scale: float
    line_h: int
    overlay_lines: tuple[tuple[int, ...], ...]   # which overlay fields go on which line
    gap: int = GAP

    @property
    def width(self) -> int:
        return self.panes * self.pane_w + (self.panes - 1) * self.gap

    @property
    def height(self) -> int:
        return self.label_h + self.pane_h + self.overlay_h

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as video writers take it."""
        return self.width, self.height

    def pane_rect(self, i: int) -> tuple[int, int, int, int]:
        """(x, y, w, h) of pane i in the composed image."""
        if not 0 <= i < self.panes:
            raise IndexError(f"pane {i} of {self.panes}")
        return i * (self.pane_w + self.gap), self.label_h, self.pane_w, self.pane_h


def _text_w(text: str, fs: float) -> int:
    return cv2.getTextSize(text, _FONT, fs, 1)[0][0]


def _even(v: float) -> int:
    v = int(round(v))
    return v + (v % 2)


def layout(panes: int, frame_size: tuple[int, int], scale: int = 1, overlay: bool = True,
           labels: Sequence[str] = ()) -> Layout:
    """The layout compose_panes uses for `panes` panes of `frame_size` = (w, h) input pixels."""
    if panes < 1:
        raise ValueError("compose needs at least one pane")
    if not isinstance(scale, (int, np.integer)) or not 1 <= scale <= 16:
        raise ValueError(f"scale must be a whole number from 1 to 16, got {scale!r}")
    pw, ph = int(frame_size[0]) * int(scale), int(frame_size[1]) * int(scale)
    fs = min(1.0, max(0.3, pw / 512.0))
    for label in labels:  # shrink until every label fits its pane (down to a readable floor)
        while fs > 0.3 and _text_w(label, fs) > pw - 4:
            fs = round(fs - 0.05, 2)
    line_h = _even(34 * fs + 4)
    total_w = panes * pw + (panes - 1) * GAP
    lines: list[list[int]] = []
    if overlay:
        for k, field in enumerate(_WORST_FIELDS):
            line = lines[-1] if lines else None
            text = _FIELD_SEP.join([_WORST_FIELDS[j] for j in (line or [])] + [field])
            if line is not None and _text_w(text, fs) <= total_w - 8:
                line.append(k)
            else:
                lines.append([k])
    return Layout(panes, pw, ph, line_h, line_h * len(lines), fs, line_h, tuple(tuple(v) for v in lines))


_CHROME: dict[tuple, np.ndarray] = {}


def _chrome(lay: Layout, labels: tuple[str, ...]) -> np.ndarray:
    """Background, gaps and pane labels: drawn once per layout and label set."""
    key = (lay, labels)
    img = _CHROME.get(key)
    if img is None:
        img = np.empty((lay.height, lay.width, 3), dtype=np.uint8)
        img[:] = BACKGROUND
        for i, label in enumerate(labels):
            x, _, w, _ = lay.pane_rect(i)
            tw = _text_w(label, lay.font_scale)
            color = LABEL_COLORS.get(label.strip().lower(), TEXT)
            base = (lay.label_h + int(round(22 * lay.font_scale))) // 2
            cv2.putText(img, label, (x + max(2, (w - tw) // 2), base), _FONT, lay.font_scale, color, 1, cv2.LINE_AA)
        if len(_CHROME) > 32:
            _CHROME.clear()
        _CHROME[key] = img
    return img


def _as_rgb(img: Any, label: str) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype != np.uint8:
        raise ValueError(f"pane {label!r}: frames must be uint8 RGB, got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"pane {label!r}: frames must be (H, W, 3) RGB, got shape {a.shape}")
    return a


def _pose_fields(pose: Any) -> tuple[float, float, float]:
    """(x, z, yaw) from an engine.camera.Pose, a dict like Pose.as_dict(), or (x, z, yaw)."""
    if hasattr(pose, "position") and hasattr(pose, "yaw"):
        return float(pose.position[0]), float(pose.position[2]), float(pose.yaw)
    if isinstance(pose, dict):
        return float(pose["position"][0]), float(pose["position"][2]), float(pose["yaw"])
    x, z, yaw = pose
    return float(x), float(z), float(yaw)


def overlay_fields(overlay: dict) -> list[str]:
    """The overlay's text fields, in _WORST_FIELDS order ('' for what the dict does not give)."""
    fields = [""] * len(_WORST_FIELDS)
    if overlay.get("frame") is not None:
        fields[0] = f"frame {int(overlay['frame'])}"
    if overlay.get("observed") is not None:
        fields[1] = "observed" if overlay["observed"] else "generated"
    if overlay.get("text"):
        fields[1] = str(overlay["text"])
    if overlay.get("pose") is not None:
        x, z, yaw = _pose_fields(overlay["pose"])
        yaw = (yaw + 180.0) % 360.0 - 180.0
        fields[2:] = [f"x {x:+.2f}", f"z {z:+.2f}", f"yaw {yaw:+.1f}"]
    return fields


def compose_panes(panes: Sequence[tuple[str, np.ndarray]], overlay: dict | None = None,
                  scale: int = 1) -> np.ndarray:
    """Panes side by side, each under its label, with an optional overlay bar below.

    panes: [(label, frame uint8 (H, W, 3) RGB), ...]; every pane is shown at the first
        pane's size (others are resized to it), magnified `scale` times (nearest pixel).
    overlay: {"frame": int, "pose": Pose | {"position", "yaw"} | (x, z, yaw),
        "observed": bool, "text": str}; any keys may be left out. The bar's height
        depends only on the layout, so frames of one clip all have one size.
    Returns a new uint8 (H, W, 3) RGB image of size layout(...).size.
    """
    if not panes:
        raise ValueError("compose_panes needs at least one pane")
    labels = tuple(str(label) for label, _ in panes)
    first = _as_rgb(panes[0][1], labels[0])
    h, w = first.shape[:2]
    lay = layout(len(panes), (w, h), scale, overlay is not None, labels)
    out = _chrome(lay, labels).copy()
    for i, (label, img) in enumerate(panes):
        a = first if i == 0 else _as_rgb(img, label)
        if a.shape[:2] != (h, w):
            shrink = a.shape[0] > h or a.shape[1] > w
            a = cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        x, y, pw, ph = lay.pane_rect(i)
        if scale > 1:
            out[y:y + ph, x:x + pw] = cv2.resize(a, (pw, ph), interpolation=cv2.INTER_NEAREST)
        else:
            out[y:y + ph, x:x + pw] = a
    if overlay is not None:
        fields = overlay_fields(overlay)
        top = lay.label_h + lay.pane_h
        base = (lay.line_h + int(round(22 * lay.font_scale))) // 2
        for n, line in enumerate(lay.overlay_lines):
            text = _FIELD_SEP.join(fields[k] for k in line if fields[k])
            if text:
                cv2.putText(out, text, (4, top + n * lay.line_h + base), _FONT, lay.font_scale, TEXT, 1, cv2.LINE_AA)
    return out
