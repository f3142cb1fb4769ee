"""The one place Qt key codes live: keys and mouse buttons -> framework-neutral actions.

Everything past this module (controller, worker, engine) sees `Action`s, so the model
never learns about a UI toolkit (DIAMOND's pygame key codes inside action encoding
are the mistake this avoids). Change a binding here and the help overlay follows,
because it is generated from the same tables.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence

from explorer.controller import HELD_ACTIONS, Action

# Held keys: active while down.
HELD_KEYS: dict[int, Action] = {
    Qt.Key.Key_W: Action.FORWARD,
    Qt.Key.Key_S: Action.BACK,
    Qt.Key.Key_A: Action.STRAFE_LEFT,
    Qt.Key.Key_D: Action.STRAFE_RIGHT,
    Qt.Key.Key_Left: Action.TURN_LEFT,
    Qt.Key.Key_Right: Action.TURN_RIGHT,
    Qt.Key.Key_Up: Action.LOOK_UP,
    Qt.Key.Key_Down: Action.LOOK_DOWN,
    Qt.Key.Key_Shift: Action.FAST,
}

# Trigger keys: fire once per press (auto-repeat ignored).
TRIGGER_KEYS: dict[int, Action] = {
    Qt.Key.Key_F1: Action.HELP,
    Qt.Key.Key_Question: Action.HELP,
    Qt.Key.Key_Space: Action.PAUSE,
    Qt.Key.Key_R: Action.RECORD,
    Qt.Key.Key_M: Action.MEMORY,
    Qt.Key.Key_L: Action.LAYOUT,
    Qt.Key.Key_C: Action.COMPARE,
    Qt.Key.Key_G: Action.GROUND_TRUTH,
    Qt.Key.Key_N: Action.NEW_WORLD,
    Qt.Key.Key_Home: Action.HOME,
    Qt.Key.Key_F: Action.CAPTURE_MOUSE,
    Qt.Key.Key_Escape: Action.RELEASE,
    Qt.Key.Key_F12: Action.SCREENSHOT,
}

LOOK_BUTTON = Qt.MouseButton.LeftButton          # drag with it to look around


def quit_shortcuts() -> list[QKeySequence]:
    """The platform's Quit keys plus Ctrl+Q. A function: QKeySequence needs a QApplication first.

    Deduplicated: on Linux the platform's Quit is Ctrl+Q itself, and a sequence bound twice is
    "ambiguous" to Qt, which then runs neither.
    """
    seqs: list[QKeySequence] = []
    for seq in QKeySequence.keyBindings(QKeySequence.StandardKey.Quit) + [QKeySequence("Ctrl+Q")]:
        if not seq.isEmpty() and all(seq != s for s in seqs):
            seqs.append(seq)
    return seqs


# Rows of the help overlay: (keys as a person reads them, what they do).
HELP_ROWS: list[tuple[str, str]] = [
    ("W A S D", "walk forward / left / back / right"),
    ("Shift", "faster (walk and turn)"),
    ("mouse drag", "look around"),
    ("F", "capture the mouse for free look (Esc releases)"),
    ("Left / Right", "turn"),
    ("Up / Down", "look up / down"),
    ("Space", "pause / resume generation"),
    ("R", "record start / stop (MP4 + trajectory)"),
    ("M", "memory on / off"),
    ("L", "scene layout on / off (off: the pure world model)"),
    ("C", "compare: memory on | memory off"),
    ("G", "ground-truth pane"),
    ("N", "new world"),
    ("Home", "back to the start pose"),
    ("F12", "save a screenshot"),
    ("F1 or ?", "this help"),
    ("Ctrl+Q", "quit"),
]


def action_for_key(key: int, modifiers: Qt.KeyboardModifier | None = None) -> Action | None:
    """The action bound to a key, or None. Shift+/ arrives as '?' on most layouts, so both map."""
    if key in HELD_KEYS:
        return HELD_KEYS[key]
    if key == Qt.Key.Key_Slash and modifiers is not None and modifiers & Qt.KeyboardModifier.ShiftModifier:
        return Action.HELP
    return TRIGGER_KEYS.get(key)


def is_held(action: Action) -> bool:
    return action in HELD_ACTIONS


def shift_down(modifiers: Qt.KeyboardModifier) -> bool:
    """Shift from an event's modifiers: a lost Shift release must not leave the camera fast."""
    return bool(modifiers & Qt.KeyboardModifier.ShiftModifier)
