"""WorldSession: the one seam through which the GUI, export, eval and bench drive the model.

    session = WorldSession(model, memory=True, capacity=65536, steps=4, seed=0)
    session.reset()
    session.observe(rgb, pose, depth)      # a real observation: encoded and written to memory
    result = session.step(pose)             # a generated frame for the next pose

With a layout source (engine/model/layout_cells.SceneLayout: the level's geometry as depth,
normals and material classes, never a colour) and a generator that takes it, every step is
grounded in the level: the generator sees the target view's layout, memory lifts cells with
its exact depth, and step() may come before any observe() (the first frame is the model's
own too). Layout off (set_layout(False)) is the pure world model: the same network without
the layout, memory lifting cells with the model's own depth.

The networks run on a backend (engine/backends: torch by default, or "onnxruntime",
"tensorrt", "auto", or a Backend instance); memory and sampling stay in torch.
It never calls the ground-truth renderer: observations come from the caller.
Deterministic for a fixed seed (one torch.Generator drives every sample).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine import projection
from engine.backends import Backend, select_backend
from engine.camera import Pose
from engine.memory import LatentMemory
from engine.model.appearance import look_layout, read_look
from engine.model.autoencoder import (
    cell_depth,
    to_model_image,
    to_uint8_image,
    with_seen,
)
from engine.model.conditioning import condition
from engine.model.config import check_temperature
from engine.model.latent_range import clamp_channel_means
from engine.model.layout_cells import PIXEL_CHANNELS, SceneLayout, layout_off
from engine.model.pattern_spectrum import LOCK, unlocked
from engine.model.sampler import sample
from engine.model.segments import MAX_SEGMENTS
from engine.model.world_model import WorldModel


@dataclass
class StepResult:
    frame: np.ndarray                 # (H, W, 3) uint8
    depth: np.ndarray                 # (H, W) float32 metres, the model's own prediction
    pose: Pose
    index: int                        # frame index since reset
    observed: bool                    # True for observe(), False for generated frames
    timings: dict[str, float] = field(default_factory=dict)   # milliseconds per stage and total
    memory: dict = field(default_factory=dict)                # memory stats after this frame
    coverage: float = 0.0             # fraction of latent cells the memory canvas covered
    finite: bool = True               # the model's float latent and frame had no NaN or inf


def _c2w(pose: Pose, device) -> torch.Tensor:
    return torch.as_tensor(pose.c2w(), dtype=torch.float32, device=device)


class WorldSession:
    def __init__(self, model: WorldModel | str | Path | None = None, memory: bool = True,
                 capacity: int | None = None, steps: int | None = None, seed: int = 0,
                 device: str | torch.device = "cpu", backend: str | Backend = "torch",
                 temperature: float | None = None, layout: SceneLayout | None = None) -> None:
        self.model = model if isinstance(model, WorldModel) else WorldModel.load(model, device)
        self.device = next(self.model.parameters()).device
        # What runs the networks (engine/backends): a name is selected here, with a fallback and a
        # message, never a crash; a Backend instance can be shared by several sessions of one model.
        if isinstance(backend, Backend):
            self.backend, self.backend_message = backend, f"backend {backend.name}: {backend.reason}"
        else:
            self.backend, self.backend_message = select_backend(backend, self.model)
        cfg = self.model.cfg
        self.memory_enabled = bool(memory)
        self.steps = int(cfg.inference.steps if steps is None else steps)
        if self.steps < 1:
            raise ValueError(f"sampling steps must be at least 1, got {self.steps}")
        # A bad value from the model's config.json is named as such, not as the caller's argument.
        source = "the model's config inference.temperature" if temperature is None else "temperature"
        try:
            self.temperature = float(cfg.inference.temperature if temperature is None else temperature)
            check_temperature(self.temperature)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: {e}") from None
        self.seed = int(seed)
        # The latent range guard's bounds as a tensor once, not rebuilt from the config every step.
        r = cfg.latent_mean_range
        self._latent_bounds = None if r is None else torch.tensor(r, dtype=torch.float32, device=self.device)
        self.layout_source: SceneLayout | None = None
        self.layout_enabled = False
        if layout is not None:
            self.set_layout(True, layout)
        self.memory = LatentMemory.from_config(self.model.latent_channels, cfg.memory, self.model.cells, cfg.fov_deg,
                                               self.device, capacity)
        self.reset()

    @property
    def image_size(self) -> int:
        return self.model.image_size

    @property
    def fov_deg(self) -> float:
        return self.model.cfg.fov_deg

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.seed = int(seed)
        self.gen = torch.Generator().manual_seed(self.seed)
        self.memory.reset()
        self.index = 0
        # Per-room appearance codes (engine/model/appearance.py), kept with the memory: a segment's
        # code is fixed the first time it is seen, from an observation's posterior or the prior.
        d = self.model.cfg.autoencoder.appearance_dim
        self.codes = torch.zeros(1, MAX_SEGMENTS, d, device=self.device)
        self.code_known = torch.zeros(MAX_SEGMENTS, dtype=torch.bool, device=self.device)
        # How many pixels the view an observed code was read from showed of its segment (0: not observed):
        # a later view replaces it only when it shows at least as much (a glimpse through a doorway reads badly).
        self.code_area = torch.zeros(MAX_SEGMENTS, device=self.device)
        # With each code, its segment's pattern lock (engine/model/pattern_spectrum.py): the frequency
        # and phase an observation showed, or a random phase for a look drawn from the prior.
        self.locks = torch.zeros(1, MAX_SEGMENTS, LOCK, device=self.device)
        self._prev: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # latent, cell depth, c2w

    @property
    def last_latent(self) -> torch.Tensor | None:
        """The latent (1, C, S, S) of the last observed or generated frame, the next step's context;
        None before the first observe(). Training data for the decoder is made of these."""
        return None if self._prev is None else self._prev[0]

    def set_memory(self, enabled: bool) -> None:
        """Switch memory on or off mid-walk; what is stored stays (off = not read, not written)."""
        self.memory_enabled = bool(enabled)

    def set_layout(self, enabled: bool, source: SceneLayout | None = None) -> None:
        """Switch the scene layout on or off mid-walk (on needs a layout source); `source` replaces
        the session's source (another level)."""
        if source is not None:
            if not self.model.takes_layout:
                raise ValueError("this model's generator takes no scene layout (config.json "
                                 "generator.layout_channels is 0); run it with the layout off")
            self.layout_source = source
        if enabled and self.layout_source is None:
            raise ValueError("this session has no layout source; give WorldSession a SceneLayout")
        self.layout_enabled = bool(enabled)

    @property
    def layout_on(self) -> bool:
        return self.layout_enabled and self.layout_source is not None

    @property
    def code_observed(self) -> torch.Tensor:
        """Which segments' codes an observation set (MAX_SEGMENTS,) bool; the others were drawn or are unseen."""
        return self.code_area > 0

    def _pixels(self, pose: Pose, observed: torch.Tensor | None = None) -> torch.Tensor | None:
        """The full-resolution layout for a decoder that takes it, with the layout on; else None
        (layout off, which such a decoder reads as zeros). For a decoder with appearance codes, each
        pixel's code follows the layout: an `observed` frame (1, 3, H, W) sets the codes of the
        segments it shows from its posterior; segments seen first here draw theirs from the prior."""
        if not (self.layout_on and self.model.decoder_takes_layout):
            return None
        pixels = self.layout_source.pixels_at(pose).to(self.device)
        appearance = self.model.ae.appearance
        if appearance is None:
            return pixels
        uv, seg = (t.to(self.device) for t in self.layout_source.surface_at(pose))
        if self.memory_enabled:   # memory off keeps nothing and draws nothing: every code at the prior's mean
            if observed is not None:
                mu, present, lock = read_look(appearance, observed, pixels[:, :PIXEL_CHANNELS], uv, seg, self.gen)
                # An observation is the truth: it replaces a drawn code, and a later view that shows
                # more of the segment refines what an earlier one read; one that shows less does not
                # (measured: a wall's last sight, a strip at a frame's edge, read a blue wall as maroon).
                area = torch.bincount((seg + 1).flatten(), minlength=MAX_SEGMENTS + 1)[1:].to(self.code_area)
                better = present[0] & (area >= self.code_area)
                self.codes[:, better] = mu[:, better]
                self.code_area[better] = area[better]
                # The lock comes from the same view as the code, unless that view shows no clear
                # pattern where an earlier one did; a clear lock always beats none.
                clear, had = lock[0, :, :2].amax(-1) > 0, self.locks[0, :, :2].amax(-1) > 0
                take = present[0] & ((better & (clear | ~had)) | (clear & ~had))
                self.locks[:, take] = lock[:, take]
                self.code_known |= present[0]
            ids = torch.unique(seg)
            ids = ids[ids >= 0]
            new = ids[~self.code_known[ids]]
            if len(new):
                prior = self.model.ae.prior
                if prior is not None:   # a look training segments had, pattern and all (engine/model/look_prior.py)
                    self.codes[0, new], self.locks[0, new] = prior.draw(new, self.gen)
                else:
                    t = self.model.cfg.inference.appearance_temperature
                    draw = torch.randn(len(new), self.codes.shape[-1], generator=self.gen).to(self.device)
                    self.codes[0, new] = t * draw
                    self.locks[0, new] = unlocked(len(new), self.device, self.gen)
                self.code_known[new] = True
            return look_layout(pixels[:, :PIXEL_CHANNELS], uv, seg, torch.cat([self.locks, self.codes], dim=-1))
        # Every segment at the prior's mean, unlocked: look_layout's input with its looks all zero, without the gather.
        looks = torch.zeros(1, LOCK + self.codes.shape[-1], *seg.shape[-2:], device=self.device)
        return torch.cat([pixels[:, :PIXEL_CHANNELS], uv, looks], dim=1)

    def _check_frame(self, rgb: np.ndarray) -> None:
        s = self.image_size
        if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.shape == (s, s, 3)):
            got = f"{getattr(rgb, 'dtype', type(rgb))} {getattr(rgb, 'shape', '')}"
            raise ValueError(f"observation must be uint8 of shape ({s}, {s}, 3) for this model, got {got}")

    @torch.no_grad()
    def observe(self, rgb: np.ndarray, pose: Pose, depth: np.ndarray | None = None) -> StepResult:
        """Encode a real frame, write it to memory as observed, and make it the context."""
        self._check_frame(rgb)
        t0 = time.perf_counter()
        x = to_model_image(torch.from_numpy(rgb)[None]).to(self.device)
        z = self.backend.encode(x)
        rec, pred_depth = self.backend.decode(z, self._pixels(pose, x))
        if depth is not None:
            d = torch.from_numpy(np.asarray(depth, dtype=np.float32))[None, None].to(self.device)
            cells = cell_depth(d, self.model.cells)
        elif self.layout_on:
            cells = self.layout_source.cells_at(pose)[1].to(self.device)
        else:
            cells = cell_depth(pred_depth, self.model.cells)
        t1 = time.perf_counter()
        c2w = _c2w(pose, self.device)
        if self.memory_enabled:
            self.memory.write(z[0], cells[0, 0], c2w, self.index, float(self.index), observed=True)
        t2 = time.perf_counter()
        self._prev = (z, cells, c2w)
        res = StepResult(to_uint8_image(rec)[0].cpu().numpy(), pred_depth[0, 0].cpu().numpy(), pose, self.index,
                         True, {"encode": 1e3 * (t1 - t0), "memory_write": 1e3 * (t2 - t1), "total": 1e3 * (t2 - t0)},
                         self.memory.stats().as_dict())
        self.index += 1
        return res

    @torch.no_grad()
    def step(self, pose: Pose) -> StepResult:
        """Generate the frame seen from `pose`, then remember it."""
        if self._prev is None and not self.layout_on:
            raise RuntimeError("WorldSession.step() before any observe() needs the scene layout on; "
                               "otherwise give the session a first real frame")
        m, s, c = self.model, self.model.cells, self.model.latent_channels
        fov = m.cfg.fov_deg
        c2w = _c2w(pose, self.device)
        t0 = time.perf_counter()
        layout, layout_depth = None, None
        if self.layout_on:
            layout, layout_depth = (t.to(self.device) for t in self.layout_source.cells_at(pose))
        elif m.takes_layout:
            layout = layout_off(1, s, self.device)
        pixels = self._pixels(pose)
        tl = time.perf_counter()
        if self.memory_enabled and len(self.memory):
            canvas, mask, mdepth = self.memory.read(c2w, self.index)
            canvas, mask, mdepth = canvas[None], mask[None], mdepth[None]
        else:
            canvas = torch.zeros(1, c, s, s, device=self.device)
            mask = torch.zeros(1, 1, s, s, device=self.device)
            mdepth = torch.zeros_like(mask)
        if pixels is not None and self.model.cfg.autoencoder.invented_field:
            # Which cells the generator is given an observation of (the read's own projection); it invents the rest.
            seen = self.memory.observed_cells(c2w, self.index)[None] if self.memory_enabled else torch.zeros_like(mask)
            pixels = with_seen(pixels, seen)
        t1 = time.perf_counter()
        if self._prev is None:   # a first frame from the layout alone
            cond = condition(None, None, c2w[None], c2w[None], canvas, mask, mdepth, fov, layout)
        else:
            prev_z, prev_cells, prev_c2w = self._prev
            pts = projection.lift(prev_cells[:, 0], prev_c2w[None], fov)
            cond = condition(prev_z, pts, prev_c2w[None], c2w[None], canvas, mask, mdepth, fov, layout)
        z = sample(lambda x, t: self.backend.generate(x, t, cond), (1, c, s, s), self.steps, self.gen, self.device,
                   temperature=self.temperature)
        # Keep each channel's mean where real frames keep it: against colour drift in long walks.
        z = clamp_channel_means(z, self._latent_bounds)
        t2 = time.perf_counter()
        rgb, depth = self.backend.decode(z, pixels)
        # With the layout on, memory and the next step lift this frame's cells with exact geometry;
        # the frame's shown depth stays the decoder's (for a layout decoder, the layout's depth with
        # its learned correction).
        cells = layout_depth if layout_depth is not None else cell_depth(depth, s)
        t3 = time.perf_counter()
        if self.memory_enabled:
            self.memory.write(z[0], cells[0, 0], c2w, self.index, float(self.index), observed=False)
        t4 = time.perf_counter()
        self._prev = (z, cells, c2w)
        timings = {"layout": 1e3 * (tl - t0), "memory_read": 1e3 * (t1 - tl), "generator": 1e3 * (t2 - t1),
                   "decode": 1e3 * (t3 - t2), "memory_write": 1e3 * (t4 - t3), "total": 1e3 * (t4 - t0)}
        finite = bool(torch.isfinite(z).all() and torch.isfinite(rgb).all())
        res = StepResult(to_uint8_image(rgb)[0].cpu().numpy(), depth[0, 0].cpu().numpy(), pose, self.index, False,
                         timings, self.memory.stats().as_dict(), float(mask.mean()), finite)
        self.index += 1
        return res
