"""What crosses the thread boundary between the worker and the window, and model loading.

Everything here is plain data (numpy arrays, dataclasses, engine types) so a bundle
can be handed from the inference thread to the GUI without either sharing live
objects: the GUI never reaches into a session, and the worker never into a widget.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from engine.camera import Pose

LABEL_ON, LABEL_OFF, GT_LABEL = "memory on", "memory off", "ground truth"
MAP_POINTS = 4000      # memory points sent to the minimap at most; enough to read the shape of what is stored


@dataclass
class RunConfig:
    """What the worker needs to build sessions and a world (settings plus command-line overrides)."""

    model_dir: str = ""
    backend: str = "auto"
    steps: int = 0               # 0: the model's default
    capacity: int = 0            # 0: the model's default
    world_seed: int = 0
    fov_deg: float = 0.0         # 0: the model's own
    sample_seed: int = 0         # sampling noise seed, the same for memory on and off
    start: Pose | None = None    # None: the level's first spawn point
    temperature: float = 0.0     # 0: the model's default
    # The world's first frame: a real observation (True), or generated from the scene layout alone
    # (False; the level's whole look is the model's own; needs a model that takes the layout).
    observe_start: bool = True

    @staticmethod
    def from_settings(s) -> "RunConfig":
        return RunConfig(s.model_dir, s.backend, s.steps, s.capacity, s.world_seed, s.fov_deg,
                         temperature=s.temperature)


@dataclass
class WorldInfo:
    seed: int
    level: object                # engine.world.levels.Level
    collision: object            # engine.world.collision.CollisionMap (read-only on the GUI thread)
    start: Pose
    image_size: int
    fov_deg: float
    has_model: bool
    config: RunConfig


@dataclass
class Pane:
    label: str
    frame: np.ndarray            # (H, W, 3) uint8
    observed: bool               # a real observation's reconstruction, not a generated frame
    fps: float                   # this pane's own model step rate (nan for ground truth / observations only)
    timings: dict = field(default_factory=dict)   # ms by stage
    memory: dict | None = None   # memory stats after this frame
    coverage: float = 0.0        # fraction of latent cells the memory canvas covered
    psnr: float | None = None    # against ground truth at the same pose

    def overlay_text(self) -> str:
        """What the viewport writes over this pane: its step rate, its PSNR, or that it is observed."""
        parts = []
        if math.isfinite(self.fps):
            parts.append(f"{self.fps:.1f} fps")
        if self.psnr is not None and not self.observed:
            parts.append(f"{self.psnr:.1f} dB")
        if self.observed and self.memory is not None:
            parts.append("observed")
        return "  ".join(parts)


@dataclass
class FrameBundle:
    seq: int                     # the request or command this answers
    pose: Pose
    index: int                   # frame index since the sessions' reset
    panes: list[Pane]
    gt: np.ndarray               # ground truth at `pose`
    memory_points: np.ndarray | None   # (N, 4): x, z, age in frames, observed (0/1)
    compare: bool
    memory_on: bool
    show_gt: bool
    world_seed: int
    dropped: int                 # requests and bundles skipped so far (latest wins)

    def composition(self) -> tuple[list[tuple[str, np.ndarray]], dict]:
        """export.compose.compose_panes' arguments: the labelled panes and the frame / pose overlay."""
        return ([(p.label, p.frame) for p in self.panes],
                {"frame": self.index, "pose": self.pose, "observed": self.panes[0].observed})


def load_model(cfg: RunConfig):
    """The model to run and notes for the window: (WorldModel | None, [(level, text), ...]).

    Fallbacks, each announced: a model directory that fails to load falls back to the
    shipped model; when no model loads the window shows ground truth only, labelled so,
    rather than closing. The backend that runs it comes from load_backend.
    """
    from engine.model.world_model import WorldModel
    from explorer.settings import torch_device

    notes: list[tuple[str, str]] = []
    device = torch_device()
    model = None
    tries = [(cfg.model_dir, cfg.model_dir)] if cfg.model_dir else []
    tries.append(("", "the shipped model"))
    for path, name in tries:
        try:
            model = _load_on(WorldModel, path, device, notes)
            if path != cfg.model_dir:
                notes.append(("warning", f"using {name} instead"))
            break
        except Exception as e:  # noqa: BLE001 - any failure to load is reported and a fallback taken
            notes.append(("error", f"{name} failed to load: {e}"))
    if model is None:
        notes.append(("error", "no model could be loaded: showing ground truth only. "
                               "Choose a model directory in Settings and press Apply."))
        return None, notes
    if cfg.fov_deg and not math.isclose(cfg.fov_deg, model.cfg.fov_deg):
        notes.append(("warning", f"the model was trained at {model.cfg.fov_deg:g}° and runs at {cfg.fov_deg:g}°: "
                                 "expect worse frames"))
        model.cfg.fov_deg = float(cfg.fov_deg)   # memory, projection and the renderer all read it from here
    where = next(model.parameters()).device
    notes.append(("info", f"model {cfg.model_dir or 'shipped'}: {model.image_size}px on {where}"))
    return model, notes


def load_backend(model, requested: str):
    """The backend the sessions of `model` share, and notes: (Backend, [(level, text)]).

    A backend that cannot run falls back to torch with a warning (engine.backends.select_backend
    never raises for that). The first onnxruntime or tensorrt run of a model exports it to ONNX
    (and builds engines) in the user's cache: seconds, once per weights, on the worker thread.
    """
    from engine.backends import select_backend

    backend, message = select_backend(requested, model)
    level = "info" if requested in ("auto", backend.kind) else "warning"
    return backend, [(level, message)]


def _load_on(world_model_cls, path: str, device: str, notes: list):
    try:
        return world_model_cls.load(path or None, device)
    except RuntimeError as e:
        if device == "cpu":
            raise
        notes.append(("warning", f"could not load onto {device} ({e}); using the CPU"))
        return world_model_cls.load(path or None, "cpu")


def memory_points_for_map(session) -> np.ndarray:
    """(N, 4) float32 x, z, age in frames, observed flag; an even subsample of at most MAP_POINTS."""
    pos, t, obs = session.memory.points()
    n = int(pos.shape[0])
    if n == 0:
        return np.zeros((0, 4), np.float32)
    stride = max(1, math.ceil(n / MAP_POINTS))
    pos, t, obs = pos[::stride].cpu().numpy(), t[::stride].cpu().numpy(), obs[::stride].cpu().numpy()
    age = np.maximum(float(session.index - 1) - t, 0.0)
    return np.stack([pos[:, 0], pos[:, 2], age, obs.astype(np.float32)], axis=1).astype(np.float32)
