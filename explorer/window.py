"""The main window: viewport, docks (plots, minimap, settings), status bar, and the glue.

The GUI thread does only cheap things: it integrates the pose from held keys on a fast
timer (so walking is smooth whatever the model's frame rate), hands the newest pose to
the worker, and shows whatever bundle the worker last finished. Inference, the
renderer and model loading all live on the worker thread (explorer/worker.py).
"""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import QEvent, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeyEvent
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow

from engine.camera import Pose
from engine.files import atomic_path
from explorer import keymap
from explorer.controller import Action, Controller
from explorer.gui_gc import GuiThreadGC
from explorer.minimap import Minimap
from explorer.plots import LivePlots
from explorer.recorder import Recorder
from explorer.settings import Settings, SettingsPanel, load_settings, save_settings
from explorer.viewport import Viewport
from explorer.worker import SessionFactory, Worker
from explorer.world_state import FrameBundle, RunConfig, WorldInfo
from export.compose import compose_panes, layout

RECORD_PANE_PX = 256          # recorded panes are magnified to at least this size


@dataclass
class LaunchOptions:
    """Command-line choices for one run: they override the saved settings and are not saved."""

    model_dir: str | None = None
    world_seed: int | None = None
    steps: int | None = None
    capacity: int | None = None
    temperature: float | None = None
    out_dir: str | None = None
    compare: bool = False
    ground_truth: bool = False
    memory: bool = True
    layout: bool = True              # the scene layout grounds generation (models that take it)
    observe_start: bool = True       # False: each world's first frame is generated from the layout alone
    start: Pose | None = None
    backend: str | None = None


class MainWindow(QMainWindow):
    def __init__(self, store: QSettings, options: LaunchOptions | None = None,
                 session_factory: SessionFactory | None = None, clock: Callable[[], float] = time.monotonic,
                 input_interval_ms: int = 15) -> None:
        super().__init__()
        self.setWindowTitle("Mirage Explorer")
        self.store, self.clock = store, clock
        opts = options or LaunchOptions()
        self.settings = self._with_options(load_settings(store), opts)
        self.compare, self.show_gt, self.memory_on, self.paused = opts.compare, opts.ground_truth, opts.memory, False
        self.layout_on, self.observe_start = opts.layout, opts.observe_start
        self.controller: Controller | None = None
        self.world: WorldInfo | None = None
        self.held: set[Action] = set()
        self.last_bundle: FrameBundle | None = None
        self.frames_shown = 0
        self.messages: list[tuple[str, str]] = []
        self.autopilot = None           # explorer.autopilot.Autopilot while a script drives the camera
        self._sent: Pose | None = None
        self._shown_at: deque[float] = deque(maxlen=32)
        self._last_tick = clock()
        self._closed = False

        self.viewport = Viewport()
        self.viewport.key_handler = self.handle_key
        self.viewport.look.connect(self._on_look)
        self.viewport.resized.connect(lambda: self.last_bundle is not None and self._render(self.last_bundle))
        self.setCentralWidget(self.viewport)
        self.plots = LivePlots(clock=clock)
        self.minimap = Minimap()
        self.settings_panel = SettingsPanel(self.settings)
        self.settings_panel.applied.connect(self.apply_settings)
        docks = {}
        for title, widget in (("Minimap", self.minimap), ("Live plots", self.plots), ("Settings", self.settings_panel)):
            dock = docks[title] = QDockWidget(title, self)
            dock.setObjectName(title)
            dock.setWidget(widget)
            self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        # One side column keeps the viewport wide: minimap on top, plots and settings as tabs below.
        self.tabifyDockWidget(docks["Live plots"], docks["Settings"])
        docks["Live plots"].raise_()
        self.resizeDocks([docks["Minimap"]], [430], Qt.Orientation.Horizontal)
        self.resizeDocks([docks["Minimap"], docks["Live plots"]], [330, 470], Qt.Orientation.Vertical)
        for w in (self.plots, self.plots.view, self.minimap):
            w.setFocusPolicy(Qt.FocusPolicy.NoFocus)   # keys belong to walking, not to a plot
        self._build_status_bar()
        quit_action = QAction("Quit", self)
        quit_action.setShortcuts(keymap.quit_shortcuts())
        quit_action.triggered.connect(self.close)
        self.addAction(quit_action)
        self.resize(1400, 820)

        self.recorder = Recorder()
        self.recorder.finished.connect(self.show_message)
        GuiThreadGC.acquire()   # before any of this window's threads start (explorer/gui_gc.py)
        self.worker = Worker(self._run_config(opts.start), session_factory)
        self.worker.compare, self.worker.show_gt, self.worker.memory_on = self.compare, self.show_gt, self.memory_on
        self.worker.layout_on = self.layout_on
        self.worker.frame_ready.connect(self._on_frame_ready)
        self.worker.world_ready.connect(self._on_world)
        self.worker.message.connect(self.show_message)
        self.input_timer = QTimer(self)
        self.input_timer.timeout.connect(self.input_tick)
        self.input_timer.start(input_interval_ms)
        self.status_timer = QTimer(self)
        self.status_timer.timeout.connect(self._update_status)
        self.status_timer.start(250)
        self.worker.start()
        self.viewport.setFocus()

    # ---- settings ---------------------------------------------------------------------
    @staticmethod
    def _with_options(s: Settings, o: LaunchOptions) -> Settings:
        over = {k: v for k, v in (("model_dir", o.model_dir), ("world_seed", o.world_seed), ("steps", o.steps),
                                  ("capacity", o.capacity), ("out_dir", o.out_dir), ("backend", o.backend),
                                  ("temperature", o.temperature))
                if v is not None}
        return replace(s, **over)

    def _run_config(self, start: Pose | None = None) -> RunConfig:
        return replace(RunConfig.from_settings(self.settings), start=start, observe_start=self.observe_start)

    def apply_settings(self, s: Settings) -> None:
        """From the panel: save, then reload the model and world on the worker."""
        save_settings(self.store, s)
        if self.recorder.active and s.world_seed != self.settings.world_seed:
            self.toggle_recording()
        self.settings = s
        self.controller = None          # no poses until the new world arrives
        self.worker.apply(self._run_config())

    # ---- worker signals ---------------------------------------------------------------
    def _on_world(self, info: WorldInfo) -> None:
        self.world = info
        self.controller = Controller(info.collision, info.start)
        self._sent = info.start
        self.minimap.set_world(info.collision, info.fov_deg)
        self.minimap.set_pose(info.start, self.controller.path)
        self.plots.clear()
        if info.seed != self.settings.world_seed:
            self.settings = replace(self.settings, world_seed=info.seed)
            self.settings_panel.show_settings(self.settings)
        if self.autopilot is not None:
            self.autopilot.on_world(info)

    def _on_frame_ready(self) -> None:
        bundle = self.worker.take()
        if bundle is not None:
            self.show_bundle(bundle)

    def show_bundle(self, b: FrameBundle) -> None:
        self._shown_at.append(self.clock())
        image, k = self._render(b)
        if self.recorder.active:   # what is shown, at a fixed magnification so the clip's size is stable
            size = b.panes[0].frame.shape[1]
            rk = max(1, math.ceil(RECORD_PANE_PX / size))
            self.recorder.add(image if rk == k else compose_panes(*b.composition(), scale=rk), b.pose,
                              b.panes[0].observed)
        self.plots.push(b, self.shown_fps())
        self.minimap.set_memory(b.memory_points)
        if self.controller is not None:
            self.minimap.set_pose(self.controller.pose, self.controller.path)
        self.last_bundle = b
        self.frames_shown += 1
        if self.autopilot is not None:
            self.autopilot.on_bundle(b)

    def _render(self, b: FrameBundle) -> tuple[np.ndarray, int]:
        """Compose the panes at the largest whole magnification that fits the viewport; show them."""
        panes, overlay = b.composition()
        size = (b.panes[0].frame.shape[1], b.panes[0].frame.shape[0])
        labels = [p.label for p in b.panes]
        k = self.viewport.fit_scale(layout(len(panes), size, 1, True, labels).size)
        image = compose_panes(panes, overlay, scale=k)
        lay = layout(len(panes), size, k, True, labels)
        texts = [(lay.pane_rect(i), p.overlay_text()) for i, p in enumerate(b.panes)]
        self.viewport.set_image(image, [t for t in texts if t[1]])
        return image, k

    def shown_fps(self) -> float:
        t = [x for x in self._shown_at if x >= self._shown_at[-1] - 2.0] if self._shown_at else []
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else float("nan")

    def show_message(self, level: str, text: str) -> None:
        """Errors and fallbacks go into the window (viewport notice, settings panel, status bar)."""
        self.messages.append((level, text))
        self.statusBar().showMessage(text, 10_000)
        if level in ("warning", "error"):
            self.viewport.notice, self.viewport.notice_level = text, level
            self.settings_panel.show_message(text)
            # The viewport as context: if the window is closed first, Qt drops the call instead
            # of running it against a deleted widget.
            QTimer.singleShot(15_000, self.viewport, lambda t=text: self._clear_notice(t))
            self.viewport.update()
        if self.autopilot is not None and level == "error":
            self.autopilot.fail(text)

    def _clear_notice(self, text: str) -> None:
        if self.viewport.notice == text:
            self.viewport.notice = ""
            self.viewport.update()

    # ---- input ------------------------------------------------------------------------
    def handle_key(self, event: QKeyEvent, pressed: bool) -> bool:
        action = keymap.action_for_key(event.key(), event.modifiers())
        if action is None:
            return False
        if action is not Action.FAST:   # a Shift release lost to another window must not stick
            (self.held.add if keymap.shift_down(event.modifiers()) else self.held.discard)(Action.FAST)
        if keymap.is_held(action):
            if not event.isAutoRepeat():
                (self.held.add if pressed else self.held.discard)(action)
        elif pressed and not event.isAutoRepeat():
            self.trigger(action)
        return True

    def input_tick(self) -> None:
        """Integrate held keys over the time that really passed and send the pose if it moved."""
        now = self.clock()
        dt, self._last_tick = now - self._last_tick, now
        if self.controller is None or self.paused or self.autopilot is not None:
            return
        self._submit(self.controller.advance(dt, self.held))

    def _on_look(self, dx: float, dy: float) -> None:
        if self.controller is not None and not self.paused and self.autopilot is None:
            self._submit(self.controller.look(dx, dy))

    def _submit(self, pose: Pose) -> None:
        if pose != self._sent:
            self._sent = pose
            self.worker.request(pose)
            self.minimap.set_pose(pose, self.controller.path)

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.ActivationChange and not self.isActiveWindow() and hasattr(self, "held"):
            self.held.clear()            # keys released while another window had focus never arrive here
        super().changeEvent(event)

    def trigger(self, action: Action) -> None:
        if action is Action.HELP:
            self.viewport.help_visible = not self.viewport.help_visible
            self.viewport.update()
        elif action is Action.PAUSE:
            self.paused = not self.paused
            self.worker.set_paused(self.paused)
        elif action is Action.RECORD:
            self.toggle_recording()
        elif action is Action.MEMORY:
            if self.compare:
                self.show_message("info", "compare mode shows memory on and off side by side; press C to leave it")
            else:
                self.memory_on = not self.memory_on
                self.worker.set_memory(self.memory_on)
        elif action is Action.LAYOUT:
            self.layout_on = not self.layout_on
            self.worker.set_layout(self.layout_on)
            if not self.layout_on:
                self.show_message("info", "scene layout off: the pure world model, generating without the level's "
                                          "geometry; press L to ground it again")
        elif action is Action.COMPARE:
            self.compare = not self.compare
            self.worker.set_compare(self.compare, self.controller.pose if self.controller else self._sent)
        elif action is Action.GROUND_TRUTH:
            self.show_gt = not self.show_gt
            self.worker.set_ground_truth(self.show_gt)
        elif action is Action.NEW_WORLD:
            self.new_world(self.settings.world_seed + 1)
        elif action is Action.HOME and self.controller is not None and self.autopilot is None:
            self._submit(self.controller.home())
        elif action is Action.CAPTURE_MOUSE:
            self.viewport.set_captured(True)
        elif action is Action.RELEASE:
            if self.viewport.captured:
                self.viewport.set_captured(False)
            else:
                self.viewport.help_visible = False
                self.viewport.update()
        elif action is Action.SCREENSHOT:
            path = self.save_screenshot()
            self.show_message("info", f"screenshot saved to {path}")
        self._update_status()

    def new_world(self, seed: int) -> None:
        if self.recorder.active:
            self.toggle_recording()      # one clip, one world: its trajectory names a single scene
        self.settings = replace(self.settings, world_seed=int(seed))
        self.settings_panel.show_settings(self.settings)
        self.controller = None
        self.worker.new_world(int(seed))

    # ---- recording and screenshots ----------------------------------------------------
    def toggle_recording(self, path: Path | None = None) -> Path | None:
        if self.recorder.active:
            out = self.recorder.stop()
            self.show_message("info", f"recording stopped: {out} (finishing the MP4)")
            return out
        if self.world is None:
            self.show_message("warning", "nothing to record yet: the world is still loading")
            return None
        try:
            out = self.recorder.start(self.settings.recordings_dir(), self.world.seed, self.world.fov_deg,
                                      self.world.image_size, path)
        except OSError as e:
            self.show_message("error", f"cannot record: {e}")
            return None
        self.show_message("info", f"recording to {out}")
        return out

    def save_screenshot(self, path: str | Path | None = None) -> Path:
        """The whole window as a PNG, with plots and minimap brought up to date first."""
        if path is None:
            folder = self.settings.recordings_dir()
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / time.strftime(f"mirage-shot-%Y%m%d-%H%M%S-{self.frames_shown}.png")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.plots.refresh()
        self.minimap.refresh()
        self._update_status()
        self.viewport.repaint()
        with atomic_path(path) as tmp:   # whoever watches the folder never sees half a PNG
            if not self.grab().save(str(tmp), "PNG"):
                raise OSError(f"could not write the screenshot {path}")
        return path

    def viewport_array(self) -> np.ndarray | None:
        """The composed image the viewport shows (tests, diagnostics)."""
        return self.viewport.image_array()

    # ---- status and shutdown ----------------------------------------------------------
    def _build_status_bar(self) -> None:
        self.status_pose, self.status_mode, self.status_rec = QLabel(), QLabel(), QLabel()
        for w in (self.status_mode, self.status_pose, self.status_rec):
            self.statusBar().addPermanentWidget(w)

    def _update_status(self) -> None:
        c = self.controller
        if c is not None:
            (x, _, z), p = c.pose.position, c.pose
            self.status_pose.setText(f"x {x:+.2f}  z {z:+.2f}  yaw {p.yaw:+.0f}°  pitch {p.pitch:+.0f}°")
        mode = "compare" if self.compare else ("memory on" if self.memory_on else "memory off")
        fps = self.shown_fps()
        dropped = self.last_bundle.dropped if self.last_bundle else 0
        text = (f"{mode}{' + GT' if self.show_gt else ''}  ·  "
                f"{'layout on' if self.layout_on else 'layout off (pure world model)'}  ·  world {self.settings.world_seed}")
        if math.isfinite(fps):
            text += f"  ·  {fps:.1f} fps shown  ·  {dropped} dropped"
        self.status_mode.setText(text)
        if self.recorder.active:
            s = int(self.recorder.elapsed_s())
            self.status_rec.setText(f"● REC {self.recorder.path.name}  {s // 60:02d}:{s % 60:02d}  "
                                    f"({self.recorder.frames} frames)")
            self.status_rec.setStyleSheet("color: #e03030; font-weight: bold;")
        else:
            self.status_rec.setText("")
        badge = " ".join(b for b, on in (("PAUSED", self.paused), ("● REC", self.recorder.active)) if on)
        if badge != self.viewport.badge:
            self.viewport.badge = badge
            self.viewport.update()

    def shutdown(self) -> None:
        """Finish the recording (a playable MP4), stop the worker. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.input_timer.stop()
        self.status_timer.stop()
        if self.recorder.active:
            self.recorder.stop(wait=True)
        self.recorder.wait_closed()
        self.worker.stop()
        GuiThreadGC.release()

    def emergency_stop(self) -> None:
        """After an unexpected exception: make sure the recording is a playable file."""
        try:
            if self.recorder.active:
                self.recorder.stop(wait=True)
        except Exception:  # noqa: BLE001 - fall back to the journal, which is playable as it is
            self.recorder.abort()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)
