"""`mirage train texture`: the texture field alone learns to draw the patterns its locks describe;
with `--part refine`, the refiner alone learns to sharpen the frame along the layout.

The texture field (engine/model/appearance.TextureField) is the only part of the decoder that can
put a wall's or a floor's pattern where the latent has none: the generator's latents of a place
never seen are colour fields. Trained inside the whole decoder it stayed faint (sharpness about
0.4 of ground truth's on explore walks): its gradient is one small term among the decoder's, and
until the lock could read checkers (pattern_spectrum._checker_lock) a third of its patterns had no
phase to learn from at all. Here every other weight is frozen, so the field can be trained on its
own, fast:

- examples are views of training worlds, decoded once by the frozen decoder with the field's output
  held at zero, from encoder latents blurred as the generator's come out (half of them to colour
  fields, engine/train/decoder.soften);
- each view's looks are what a session reads from an observation (appearance.read_look): the
  posterior's mean code and the pattern lock, so the field learns to draw exactly what it is given
  in use;
- the loss is the decoder's reconstruction terms on the frame (MSE, L1 on image gradients) plus the
  pattern detail alone (decoder.detail_loss), against ground truth.

Only the field's weights change, so the latent space, the generator and the posterior stay valid.

With `--part invented`, the texture field's second output head, for latents the generator invented
(engine/model/autoencoder.textured), is trained the same way through the field's frozen features, but
on the encoder's latents of the same views drawn without their patterns (the level's pattern-free
twin, engine/world/plain.py): latents that hold a room's colours and light and none of its pattern,
as the generator's of a place never seen do, against ground truth with the view's own looks. A model
without the head gets one, a copy of the field's own to start from.

The refiner (engine/model/refine.py) is trained the same way, on the same examples decoded with the
field's pattern on: it is the decoder's last step, after the field, and its input is what the field
draws. A model without one gets one (`--refine-width` channels, its residual at zero at first).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.model.appearance import look_layout
from engine.model.autoencoder import GEOMETRY, textured
from engine.model.world_model import WorldModel
from engine.train.ae import pick_device
from engine.train.checkpoint import (
    LossLog,
    load_checkpoint,
    save_checkpoint,
    save_run_args,
)
from engine.train.decoder import detail_loss, image_gradients, soften
from engine.train.views import looked_views


@dataclass
class TextureTrainArgs:
    model: str                         # whole model directory with a coded decoder (appearance_dim > 0)
    out: str
    steps: int = 1500
    batch: int = 12
    lr: float = 2e-3
    seeds: tuple[int, int] = (200_000, 200_048)   # training worlds the views are drawn in
    views: int = 16                    # views a world, at random free poses
    detail_weight: float = 3.0         # the pattern-detail term beside the reconstruction
    blur: tuple[float, float] = (0.2, 0.6)   # latent blur of alternate views (soften amount, 4 passes)
    save_every: int = 250
    device: str = "auto"
    seed: int = 0
    time_limit_s: float = 0.0          # stop (with a checkpoint) after this wall time; 0 = no limit
    part: str = "texture"              # which full-resolution part to train: "texture" (the field), "invented"
                                       # (its output head for invented latents) or "refine"
    refine_width: int = 16             # the refiner's channels, for a model that has none yet
    energy_weight: float = 0.0         # the local detail-energy term (energy_loss) beside the others


@torch.no_grad()
def texture_examples(model: WorldModel, seeds: tuple[int, int], views: int, blur: tuple[float, float],
                     progress: bool = True, part: str = "texture") -> dict[str, torch.Tensor]:
    """Views of the training worlds `seeds` as training examples of a full-resolution `part`: ground
    truth (N, 3, H, W) in [-1, 1], the decoder's full input with each view's own looks (N, C, H, W), the
    segments (N, 1, H, W) and the frozen decoder's frame up to that part (N, 3, H, W): the fields' pattern
    left out for "texture" and "invented", drawn for "refine" (whose residual is left out). For "invented"
    the latents are the encoder's of the same views of the level drawn without its patterns
    (engine/world/plain.py): latents of the kind the generator makes of a place never seen."""
    ae = model.ae
    dev = next(ae.parameters()).device
    out: dict[str, list[torch.Tensor]] = {"x": [], "layout": [], "seg": [], "base": []}
    amounts = torch.tensor([blur[i % 2] for i in range(views)]).view(-1, 1, 1, 1).to(dev)
    plain = part == "invented"
    for k, v in enumerate(looked_views(model, seeds, views, torch.Generator().manual_seed(0), plain=plain)):
        layout = look_layout(v.geometry, v.uv, v.seg, torch.cat([v.lock * v.present[..., None], v.code], dim=-1))
        z = soften(ae.encoder(v.plain if plain else v.x), amounts[:len(v.x)], 4)
        base, _ = ae.decoder(z, layout, texture=part == "refine", refine=False)
        for name, t in (("x", v.x), ("layout", layout), ("seg", v.seg), ("base", base)):
            out[name].append(t.cpu())
        if progress and (k + 1) % 8 == 0:
            print(f"texture examples: {k + 1} of {seeds[1] - seeds[0]} worlds", flush=True)
    return {name: torch.cat(ts) for name, ts in out.items()}


def apply_part(part: str, head: torch.nn.Module, base: torch.Tensor, layout: torch.Tensor) -> torch.Tensor:
    """The frozen decoder's frame up to `part` (N, 3, H, W) with that part (`head`) applied, as
    Decoder.forward applies it."""
    return head(base, layout[:, :GEOMETRY]) if part == "refine" else textured(head, base, layout)


ENERGY_WINDOW = 8   # pixels: the side of the windows whose detail energy energy_loss compares


def energy_loss(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """How far the frames' detail energy is from ground truth's, window by window: the root mean squared
    image gradient over each ENERGY_WINDOW-pixel window (half-overlapping), squared difference.

    Every pixel loss is paid in full for detail whose place it cannot be sure of (a brick's shade, grain,
    the last pixel of an edge) and so asks for less of it than the world has: the sharpness the evals
    measure stayed at 0.5-0.67 of ground truth's. This term is indifferent to where in a window the
    detail falls, only to how much there is, so it asks for as much as ground truth has, no more."""
    return _energy_gap(image_gradients(y), image_gradients(x))


def _energy_gap(g: tuple[torch.Tensor, torch.Tensor], t: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """energy_loss from the two frames' image gradients (field_loss has them already)."""
    def amplitude(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        e = (a[..., :, :-1] ** 2 + b[..., :-1, :] ** 2).sum(1, keepdim=True)
        return (F.avg_pool2d(e, ENERGY_WINDOW, ENERGY_WINDOW // 2) + 1e-6).sqrt()

    return ((amplitude(*g) - amplitude(*t)) ** 2).mean()


def field_loss(head: torch.nn.Module, layout: torch.Tensor, base: torch.Tensor, x: torch.Tensor, seg: torch.Tensor,
               detail_weight: float, part: str = "texture", energy_weight: float = 0.0
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoder's frame with `head` (the texture field, or the refiner: `part`) applied to the frozen
    base, against ground truth: (loss, MSE)."""
    y = apply_part(part, head, base, layout)
    gy, gx = image_gradients(y)
    ty, tx = image_gradients(x)
    mse = ((y - x) ** 2).mean()
    loss = mse + 0.5 * ((gy - ty).abs().mean() + (gx - tx).abs().mean()) + detail_weight * detail_loss(y, x, seg)
    if energy_weight > 0:
        loss = loss + energy_weight * _energy_gap((gy, gx), (ty, tx))
    return loss, mse


def _grown(model: WorldModel, part: str, state: dict[str, torch.Tensor] | None = None, **change) -> WorldModel:
    """`model` rebuilt with its autoencoder config changed by `change`, every weight it had kept, the new
    part's (under `ae.decoder.<part>.`) from `state` where given, else as the part initialises them."""
    from dataclasses import replace

    cfg = model.cfg
    cfg.autoencoder = replace(cfg.autoencoder, **change)
    cfg.check()
    grown = WorldModel(cfg).to(next(model.parameters()).device)
    missing, unexpected = grown.load_state_dict({**model.state_dict(), **(state or {})}, strict=False)
    assert not unexpected and all(k.startswith(f"ae.decoder.{part}.") for k in missing), (missing, unexpected)
    return grown.eval()


def _with_refiner(model: WorldModel, width: int) -> WorldModel:
    """`model` with a refiner of `width` channels added at zero (it decodes exactly as before)."""
    return _grown(model, "refine", refine_width=width)


def _with_invented_field(model: WorldModel) -> WorldModel:
    """`model` with the texture field's head for invented latents, a copy of the field's own output
    layers to start from: with every pixel invented it decodes exactly as before."""
    copy = {k.replace("ae.decoder.texture.", "ae.decoder.invented.", 1): v for k, v in model.state_dict().items()
            if k.startswith(("ae.decoder.texture.mid.", "ae.decoder.texture.out."))}
    return _grown(model, "invented", copy, invented_field=True)


class InventedOnly(torch.nn.Module):
    """The texture field's features through the invented head alone (every pixel invented): what the
    head is trained through, as `apply_part` applies a field."""

    def __init__(self, field: torch.nn.Module, head: torch.nn.Module) -> None:
        super().__init__()
        self.field, self.head = field, head

    def forward(self, geometry: torch.Tensor, surface: torch.Tensor, codes: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.field(geometry, surface, codes, self.head)


def train_texture(args: TextureTrainArgs, progress: bool = True) -> Path:
    """Train the texture field (or, with part "refine", the refiner) of `args.model` alone; writes a whole
    model to OUT/model and returns it."""
    if args.energy_weight < 0:
        raise ValueError(f"--energy-weight must be 0 or more, got {args.energy_weight}")
    if not all(0.0 <= b <= 1.0 for b in args.blur):
        raise ValueError(f"--blur amounts must be from 0 to 1, got {args.blur[0]} and {args.blur[1]}")
    if args.steps < 1 or args.batch < 1 or args.views < 1 or not args.lr > 0:
        raise ValueError(f"--steps, --batch and --views must be at least 1 and --lr above 0; got {args.steps}, "
                         f"{args.batch}, {args.views}, {args.lr}")
    if args.part not in ("texture", "invented", "refine"):
        raise ValueError(f"--part must be texture, invented or refine, got {args.part!r}")
    src, out = Path(args.model), Path(args.out)
    dev = pick_device(args.device)
    model = WorldModel.load(src, device=dev).eval()
    if model.ae.decoder.texture is None:
        raise ValueError(f"{src}: this model's decoder has no texture field (config.json autoencoder.appearance_dim "
                         "is 0); add codes with `mirage train decoder --appearance-dim`")
    if args.part == "refine" and model.ae.decoder.refine is None:
        if not 1 <= args.refine_width <= 64:
            raise ValueError(f"--refine-width must be 1 to 64, got {args.refine_width}")
        model = _with_refiner(model, args.refine_width)
    if args.part == "invented" and model.ae.decoder.invented is None:
        model = _with_invented_field(model)
    dec = model.ae.decoder
    field = {"texture": dec.texture, "invented": dec.invented, "refine": dec.refine}[args.part]
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    model.requires_grad_(False)
    field.requires_grad_(True)
    opt = torch.optim.Adam(field.parameters(), lr=args.lr)
    # The invented head is trained through the texture field's (frozen) features.
    applied = InventedOnly(dec.texture, field) if args.part == "invented" else field
    start = 0
    if (out / "state.json").exists():
        start = load_checkpoint(out, {args.part: field}, opt)["step"]
    save_run_args(out, args, start)
    data = texture_examples(model, args.seeds, args.views, args.blur, progress, args.part)
    n = len(data["x"])
    log = LossLog(out / f"{args.part}_loss.csv", ["step", "loss", "mse", "sec"])
    rng = np.random.default_rng(args.seed + start)
    t0 = time.time()
    for step in range(start, args.steps):
        i = torch.from_numpy(rng.choice(n, min(args.batch, n), replace=False))
        loss, mse = field_loss(applied, data["layout"][i].to(dev), data["base"][i].to(dev), data["x"][i].to(dev),
                               data["seg"][i].to(dev), args.detail_weight, args.part, args.energy_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 10 == 0:
            log.append({"step": step, "loss": loss.item(), "mse": mse.item(), "sec": time.time() - t0})
            if progress and step % 100 == 0:
                print(f"{args.part} step {step}: loss {loss.item():.4f}", flush=True)
        done = step + 1 == args.steps or bool(args.time_limit_s and time.time() - t0 > args.time_limit_s)
        if (step + 1) % args.save_every == 0 or done:
            save_checkpoint(out, {args.part: field}, opt, step + 1)
        if done:
            break
    model_dir = out / "model"
    model.save(model_dir)
    log.plot()
    return model_dir
