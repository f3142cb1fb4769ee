"""The inference thread: owns the model, the sessions and the ground-truth renderer.

Why a thread of its own: a model step takes tens to hundreds of milliseconds, and the
GUI must keep repainting, reading keys and moving the camera meanwhile.

How frames stay fresh (dropped, never queued):
- Input: the GUI calls `request(pose)` as often as it likes; only the latest pose is
  kept (a newer one overwrites an unread one and counts as dropped). When the worker
  finishes a frame it takes whatever pose is newest, so latency is one step, not a queue.
- Output: a finished bundle goes into a one-slot mailbox and `frame_ready` is emitted
  only when the GUI has emptied the mailbox since the last emit. A GUI that falls
  behind therefore sees the newest bundle and never a backlog of queued signals.
- Commands (memory on/off, compare, new world, settings) are a short ordered list, not
  dropped: each one changes what the next frame means.
- A fast backend (onnxruntime, tensorrt) is prepared on a thread of its own: its first run
  exports the model to ONNX (and builds engines), tens of seconds. Torch makes the frames
  meanwhile, so the first frame comes at once, and the sessions switch when it is ready.

The GUI never touches the sessions; everything it learns arrives in `FrameBundle`s and
`WorldInfo`. The renderer's EGL context is made and used only on this thread.
"""
from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
from PySide6.QtCore import QThread, Signal

from engine.camera import Pose
from engine.metrics import psnr as psnr_db
from explorer.controller import start_pose
from explorer.world_state import (
    GT_LABEL,
    LABEL_OFF,
    LABEL_ON,
    FrameBundle,
    Pane,
    RunConfig,
    WorldInfo,
    load_backend,
    load_model,
    memory_points_for_map,
)

SessionFactory = Callable[..., object]   # (model, memory=, capacity=, steps=, seed=, backend=, temperature=)


@dataclass
class _Last:
    seq: int
    pose: Pose
    results: list[tuple[str, object]]       # (label, StepResult)
    gt: np.ndarray | None
    points: np.ndarray | None = None
    points_time: float = field(default=0.0)


class Worker(QThread):
    frame_ready = Signal()              # a bundle waits in the mailbox: call take()
    world_ready = Signal(object)        # WorldInfo: a new level, collision map and start pose
    message = Signal(str, str)          # (level "info" | "warning" | "error", text) for the window

    def __init__(self, config: RunConfig, session_factory: SessionFactory | None = None) -> None:
        super().__init__()
        self.config = config
        self._factory = session_factory
        self._cond = threading.Condition()
        self._commands: list[tuple] = []
        self._pending: tuple[int, Pose] | None = None
        self._seq = 0
        self._stop = False
        self._paused = False
        self._mailbox: FrameBundle | None = None
        self._notified = False
        self.dropped_in = 0            # poses overwritten before the worker read them
        self.dropped_out = 0           # bundles overwritten before the GUI took them
        self.frames_made = 0
        # Worker-thread state.
        self.model = None
        self.backend = None            # engine.backends.Backend shared by the sessions (memory on and off)
        self.sessions: list[tuple[str, object]] = []
        self.renderer = None
        self.level = None
        self.memory_on = True
        self.layout_on = True          # the scene layout grounds generation (when the model takes it)
        self.scene_layout = None       # engine.model.layout_cells.SceneLayout of the current level
        self.compare = False
        self.show_gt = False
        self._ema_ms: dict[str, float] = {}
        self._last: _Last | None = None

    # ---- GUI-thread API ---------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def request(self, pose: Pose) -> int:
        """Generate the view from `pose` when free; replaces an unread request (latest wins)."""
        with self._cond:
            seq = self._next_seq()
            if self._pending is not None:
                self.dropped_in += 1
            self._pending = (seq, pose)
            self._cond.notify()
            return seq

    def _command(self, *cmd) -> int:
        with self._cond:
            seq = self._next_seq()
            if cmd[0] in ("world", "apply"):
                self._pending = None     # a pose of the old world means nothing in the new one
            self._commands.append((seq, *cmd))
            self._cond.notify()
            return seq

    def observe(self, pose: Pose) -> int:
        """A real observation at `pose` for every session (autopilot's leading frames)."""
        return self._command("observe", pose)

    def set_memory(self, on: bool) -> int:
        return self._command("memory", bool(on))

    def set_layout(self, on: bool) -> int:
        """Scene layout on, or off: the pure world model (the same network without the level's geometry)."""
        return self._command("layout", bool(on))

    def set_compare(self, on: bool, pose: Pose) -> int:
        """Compare mode restarts both sessions from one observation at `pose` with one seed."""
        return self._command("compare", bool(on), pose)

    def set_ground_truth(self, on: bool) -> int:
        return self._command("gt", bool(on))

    def new_world(self, world_seed: int, start: Pose | None = None) -> int:
        return self._command("world", int(world_seed), start)

    def apply(self, config: RunConfig) -> int:
        """Reload with new settings (model, backend, steps, capacity, world, fov)."""
        return self._command("apply", config)

    def set_paused(self, paused: bool) -> None:
        with self._cond:
            self._paused = bool(paused)
            self._cond.notify()

    def stop(self, timeout_s: float = 30.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self.wait(int(timeout_s * 1000))

    def take(self) -> FrameBundle | None:
        """The newest bundle (or None); empties the mailbox so the next bundle emits again."""
        with self._cond:
            b, self._mailbox, self._notified = self._mailbox, None, False
            return b

    # ---- worker thread ----------------------------------------------------------------
    def run(self) -> None:
        self._guard(self._load, self.config, 0)
        while True:
            with self._cond:
                while not (self._stop or self._commands or (self._pending and not self._paused)):
                    self._cond.wait()
                if self._stop:
                    break
                if self._commands:
                    cmd, request = self._commands.pop(0), None
                else:
                    cmd, (request, self._pending) = None, (self._pending, None)
            if cmd is not None:
                self._guard(self._run_command, cmd)
            elif request is not None:
                self._guard(self._step, *request)
        if self.renderer is not None:
            self.renderer.close()
        if self.scene_layout is not None:
            self.scene_layout.close()

    def _guard(self, fn: Callable, *args) -> None:
        """A failing step is shown in the window and the loop lives on; the next pose may work."""
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - anything here must reach the window, not kill the thread
            self.message.emit("error", f"{type(e).__name__}: {e}")
            traceback.print_exc()

    def _run_command(self, cmd: tuple) -> None:
        seq, name, *args = cmd
        if name == "observe":
            self._observe(seq, args[0], reset=False)
        elif name == "memory":
            self.memory_on = args[0]
            if not self.compare and self.sessions:
                label = LABEL_ON if self.memory_on else LABEL_OFF
                old_label, session = self.sessions[0]
                session.set_memory(self.memory_on)
                self.sessions = [(label, session)]
                if old_label in self._ema_ms:
                    self._ema_ms[label] = self._ema_ms.pop(old_label)
                if self._last is not None and self._last.results:
                    self._last.results = [(label, self._last.results[0][1])]
                self._republish(seq)
        elif name == "layout":
            self.layout_on = args[0]
            self._apply_layout()
            self._republish(seq)
        elif name == "compare":
            self._set_compare(seq, *args)
        elif name == "gt":
            self.show_gt = args[0]
            self._republish(seq)
        elif name == "world":
            self.config = replace(self.config, world_seed=args[0], start=args[1])
            self._set_world(seq)
        elif name == "apply":
            self._load(args[0], seq)
        elif name == "backend":
            self._switch_backend(seq, *args)

    def _load(self, config: RunConfig, seq: int) -> None:
        """(Re)load the model when its settings changed, then build the world and observe."""
        old, self.config = self.config, config
        model_keys = ("model_dir", "backend", "fov_deg")
        if self.model is None or any(getattr(old, k) != getattr(config, k) for k in model_keys):
            self.model, notes = load_model(config)
            self.backend = None
            if self.model is not None and config.backend == "torch":
                self.backend, more = load_backend(self.model, config.backend)
                notes += more
            elif self.model is not None:
                from engine.backends.torch_backend import TorchBackend

                self.backend = TorchBackend(self.model, reason="while the fast backend is prepared")
                notes.append(("info", f"preparing the fast backend ({config.backend}) in the background; "
                                      f"torch makes the frames until it is ready"))
                self._prepare_backend(self.model, config.backend)
            for level, text in notes:
                self.message.emit(level, text)
        self._make_sessions()
        self._set_world(seq)

    def _prepare_backend(self, model, requested: str) -> None:
        """Build the requested backend on a thread of its own and hand it to the worker loop."""
        def build() -> None:
            try:
                backend, notes = load_backend(model, requested)
            except Exception as e:  # noqa: BLE001 - select_backend falls back, but nothing may kill this silently
                self.message.emit("error", f"could not prepare the {requested} backend: {type(e).__name__}: {e}")
                return
            self._command("backend", model, backend, notes)

        threading.Thread(target=build, name="mirage-backend", daemon=True).start()

    def _switch_backend(self, seq: int, model, backend, notes: list) -> None:
        if model is not self.model:   # a later load replaced the model meanwhile: this backend is stale
            backend.close()
            return
        self.backend = backend
        for _, s in self.sessions:   # backends are stateless between calls: swapped between two steps
            s.backend, s.backend_message = backend, f"backend {backend.name}: {backend.reason}"
        for level, text in notes:
            self.message.emit(level, text)
        # No republish: a bundle under this command's number could answer a script's pending pose.

    def _make_sessions(self) -> None:
        self.sessions, self._ema_ms = [], {}
        if self.model is None:
            return
        from engine.session import WorldSession

        factory = self._factory or WorldSession
        c = self.config

        def make(memory: bool):
            return factory(self.model, memory=memory, capacity=c.capacity or None, steps=c.steps or None,
                           seed=c.sample_seed, backend=self.backend or "torch", temperature=c.temperature or None)

        if self.compare:
            self.sessions = [(LABEL_ON, make(True)), (LABEL_OFF, make(False))]
        else:
            self.sessions = [(LABEL_ON if self.memory_on else LABEL_OFF, make(self.memory_on))]
        self._apply_layout()

    @property
    def layout_active(self) -> bool:
        """Whether frames are grounded in the scene layout now (on, and a model that takes it)."""
        return self.layout_on and self.scene_layout is not None

    def _apply_layout(self) -> None:
        """Give every session the level's layout source, on or off as L last set it."""
        for _, s in self.sessions:
            if hasattr(s, "set_layout") and self.scene_layout is not None:
                s.set_layout(self.layout_on, self.scene_layout)

    def _update_scene_layout(self, size: int, fov: float) -> None:
        """The level's layout source, rebuilt when the model's resolution or field of view changes."""
        takes = self.model is not None and getattr(self.model, "takes_layout", False)
        sl = self.scene_layout
        if sl is not None and (not takes or (sl.renderer.intrinsics.width, sl.renderer.intrinsics.fov_deg) != (size, fov)):
            sl.close()
            self.scene_layout = sl = None
        if takes:
            from engine.model.layout_cells import SceneLayout

            if sl is None:
                self.scene_layout = SceneLayout.for_model(self.level, self.model)
            else:
                sl.set_level(self.level)
        self._apply_layout()

    def _image_geometry(self) -> tuple[int, float]:
        if self.model is not None:
            return self.model.image_size, float(self.model.cfg.fov_deg)
        return 128, float(self.config.fov_deg or 70.0)

    def _set_world(self, seq: int) -> None:
        from engine.world.collision import CollisionMap
        from engine.world.levels import generate_level
        from engine.world.renderer import Renderer

        self.level = generate_level(self.config.world_seed)
        collision = CollisionMap(self.level)
        size, fov = self._image_geometry()
        if self.renderer is not None and (self.renderer.width, self.renderer.intrinsics.fov_deg) != (size, fov):
            self.renderer.close()
            self.renderer = None
        if self.renderer is None:
            self.renderer = Renderer(self.level, size, size, fov)
        else:
            self.renderer.set_level(self.level)
        self._update_scene_layout(size, fov)
        start = self.config.start or start_pose(self.level.spawns[0])
        self.world_ready.emit(WorldInfo(self.config.world_seed, self.level, collision, start, size, fov,
                                        self.model is not None, self.config))
        if not self.config.observe_start and self.layout_active:
            self._generate_first(seq, start)
        else:
            if not self.config.observe_start:
                self.message.emit("warning", "a first frame without an observation needs the scene layout on and a "
                                             "model that takes it; observing the start instead")
            self._observe(seq, start, reset=True)

    def _set_compare(self, seq: int, on: bool, pose: Pose) -> None:
        if on == self.compare or not self.sessions:
            self.compare = on
            return
        self.compare = on
        if on:
            self._make_sessions()
            self._observe(seq, pose, reset=True)   # both from the same first observation and seed
            return
        # Leaving: keep walking with the memory-on session (no restart), memory as M last set it.
        session, label = self.sessions[0][1], LABEL_ON if self.memory_on else LABEL_OFF
        session.set_memory(self.memory_on)
        self.sessions = [(label, session)]
        self._ema_ms = {label: self._ema_ms[LABEL_ON]} if LABEL_ON in self._ema_ms else {}
        if self._last is not None and self._last.results:
            self._last.results = [(label, self._last.results[0][1])]
        self._republish(seq)

    def _observe(self, seq: int, pose: Pose, reset: bool) -> None:
        from engine.rollout import (
            advance,  # torch loads on the worker thread, not at window start
        )

        rgb, depth = self.renderer.render_one(pose)
        if reset:
            for _, s in self.sessions:
                s.reset(self.config.sample_seed)
        self._publish_results(seq, pose, advance(self.sessions, pose, (rgb, depth)), rgb, force_points=True)

    def _generate_first(self, seq: int, pose: Pose) -> None:
        """Reset the sessions and generate the first frame from the layout alone: nothing observed."""
        for _, s in self.sessions:
            s.reset(self.config.sample_seed)
        self._step(seq, pose)

    def _step(self, seq: int, pose: Pose) -> None:
        if self.renderer is None:
            return
        from engine.rollout import advance

        gt, _ = self.renderer.render_one(pose)   # for the GT pane and live PSNR; never shown as generated
        self._publish_results(seq, pose, advance(self.sessions, pose), gt)

    def _publish_results(self, seq: int, pose: Pose, results: list, gt: np.ndarray, force_points: bool = False) -> None:
        for label, r in results:
            if not r.observed and "total" in r.timings:
                prev = self._ema_ms.get(label)
                self._ema_ms[label] = r.timings["total"] if prev is None else 0.8 * prev + 0.2 * r.timings["total"]
        now = time.monotonic()
        last = self._last
        points = last.points if last is not None else None
        points_time = last.points_time if last is not None else 0.0
        if force_points or now - points_time > 0.3:  # the minimap needs a few updates a second, not every frame
            src = self.sessions[0][1] if self.sessions else None
            points, points_time = (memory_points_for_map(src) if src is not None else None), now
        self._last = _Last(seq, pose, results, gt, points, points_time)
        self.frames_made += 1
        self._republish(seq)

    def _republish(self, seq: int) -> None:
        """Build a bundle from the last results (also after G or M, so a paused view updates)."""
        last = self._last
        if last is None:
            return
        panes = []
        for label, r in last.results:
            psnr = psnr_db(r.frame, last.gt) if r.frame.shape == last.gt.shape else None
            ms = self._ema_ms.get(label)
            if self.scene_layout is not None and not self.layout_on:
                label += " (no layout)"   # the pure world model, said on the pane itself
            panes.append(Pane(label, r.frame, r.observed, 1000.0 / ms if ms else float("nan"), dict(r.timings),
                              dict(r.memory), float(r.coverage), psnr))
        if self.show_gt or not panes:
            panes.append(Pane(GT_LABEL if panes else GT_LABEL + " (no model)", last.gt, True, float("nan"), {}, None,
                              0.0, None))
        index = last.results[0][1].index if last.results else 0
        bundle = FrameBundle(seq, last.pose, index, panes, last.gt, last.points, self.compare, self.memory_on,
                             self.show_gt, self.config.world_seed, self.dropped_in + self.dropped_out)
        with self._cond:
            if self._mailbox is not None:
                self.dropped_out += 1
            self._mailbox = bundle
            notify, self._notified = not self._notified, True
        if notify:
            self.frame_ready.emit()
