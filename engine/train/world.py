"""`mirage train world`: the pose-conditioned generator on top of a frozen autoencoder.

Flow matching with x0 prediction (engine/model/sampler.py) on walks that revisit
places (engine/train/world_data.py). Resumable: the encoded walks are cached as
safetensors in the run directory, the generator and optimizer are checkpointed.
At the end the whole model (config + autoencoder + generator) is written to
`<out>/model`, the directory every command can load with `--model`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from engine.files import atomic_path
from engine.model.conditioning import channel, cond_channels
from engine.model.config import ModelConfig
from engine.model.latent_range import channel_mean_range
from engine.model.layout_cells import LAYOUT_CHANNELS
from engine.model.sampler import noisy, sample, sample_train_t
from engine.model.world_model import WorldModel
from engine.train import dist
from engine.train.checkpoint import (
    LossLog,
    load_checkpoint,
    save_checkpoint,
    save_run_args,
)
from engine.train.encoded_walks import (
    Walk,
    build_walks,
    latent_stats,
    walk_observe_counts,
)
from engine.train.history import build_history
from engine.train.latent_adv import LatentAdversary
from engine.train.world_data import WalkSampler, replace_prev
from engine.train.world_loader import WorkerBatches, default_workers


@dataclass
class WorldTrainArgs:
    autoencoder: str                # run dir or model dir holding autoencoder.safetensors + config.json
    out: str
    steps: int = 6000
    batch: int = 32
    lr: float = 5e-4
    seeds: tuple[int, int] = (100_000, 100_064)   # one walk of each kind per seed
    save_every: int = 200
    device: str = "auto"
    seed: int = 0
    time_limit_s: float = 0.0
    self_rollout: int = 0           # up to this many of the model's own frames as context (0: ground truth only)
    self_steps: int = 2             # sampling steps for those frames
    init: str = ""                  # start from this model dir's generator (fine-tuning), not from scratch
    context_noise: float = 0.1      # std of the noise put on the previous latent (GameNGen/DIAMOND-style)
    # Share of examples whose previous latent is blurred like the model's own outputs
    # (engine/train/world_data.py, WalkSampler._context).
    context_blur: float = 0.0
    # Share of examples with memory whose canvas a real LatentMemory holding the walk so far reads
    # (engine/train/history.py) instead of one splatted from a few earlier frames.
    history_canvas: float = 0.0
    workers: int | None = None      # batch-building processes (None: engine/train/world_loader.default_workers)
    precision: str = "auto"         # auto (bf16 autocast on CUDA, fp32 on CPU), fp32 or bf16
    adv_weight: float = 0.0         # latent discriminator's share of the gradient (engine/train/latent_adv.py); 0: none
    adv_start: int = 300            # step from which the generator gets the adversarial term (its discriminator 200 before)
    adv_lr: float = 5e-4            # the discriminator's learning rate (constant)
    adv_covered: float = 1.0        # that term's weight on memory-covered cells, relative to uncovered ones
    # The generator takes the target view's scene layout (engine/model/layout_cells.py); off: a
    # layout-free generator as v1 was. Starting from a layout-free --init, its layout inputs start at zero.
    layout: bool = True


def _save_walks(path: Path, walks: list[Walk]) -> None:
    t = {}
    for i, w in enumerate(walks):
        t[f"{i}.z"], t[f"{i}.depth"], t[f"{i}.c2w"] = w.z, w.depth, w.c2w
        t[f"{i}.fwd"], t[f"{i}.pos"] = torch.from_numpy(w.fwd).float(), torch.from_numpy(w.pos).float()
        if w.observe is not None:
            t[f"{i}.observe"] = torch.tensor([w.observe])
        if w.layout is not None:
            t[f"{i}.layout"] = w.layout
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in t.items()}, str(tmp))


def _load_walks(path: Path) -> list[Walk]:
    t = load_file(str(path))
    n = len({k.split(".")[0] for k in t})
    return [Walk(t[f"{i}.z"], t[f"{i}.depth"], t[f"{i}.c2w"], t[f"{i}.fwd"].double().numpy(),
                 t[f"{i}.pos"].double().numpy(), int(t[f"{i}.observe"]) if f"{i}.observe" in t else None,
                 t.get(f"{i}.layout"))
            for i in range(n)]


def load_autoencoder_into(model: WorldModel, src: Path) -> None:
    path = src / "autoencoder.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no autoencoder weights (train one with `mirage train autoencoder`)")
    model.ae.load_state_dict(load_file(str(path)))


def widen_input(state: dict[str, torch.Tensor], gen: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A generator's weights for a generator that takes more conditioning channels (the layout,
    appended last): the first conv's new input channels start at zero, so the widened generator
    computes exactly what the old one did until training gives the layout a say."""
    w, want = state["inp.weight"], gen.inp.weight
    if w.shape[1] < want.shape[1] and w.shape[0] == want.shape[0]:
        pad = torch.zeros(w.shape[0], want.shape[1] - w.shape[1], *w.shape[2:], dtype=w.dtype)
        state = {**state, "inp.weight": torch.cat([w, pad], dim=1)}
    return state


def _rollout(model: WorldModel, links: list, args: WorldTrainArgs, device):
    """(x0, cond) of a chain's last link, its context generated by the model along the earlier links
    (`args.self_steps` sampling steps each, no gradient), as at inference: there every context after
    the first is generated, and a model that only ever saw clean contexts drifts on its own errors."""
    was_training = model.gen.training
    model.gen.eval()
    with torch.no_grad():
        prev = None
        for x0, cond, geo in links[:-1]:
            if prev is not None:
                cond = replace_prev(cond, geo, prev)
            prev = sample(lambda x, t, c=cond: model.gen(x, t, c), tuple(x0.shape), args.self_steps, None, device)
    model.gen.train(was_training)
    x0, cond, geo = links[-1]
    return x0, replace_prev(cond, geo, prev)


def train_world(args: WorldTrainArgs, progress: bool = True) -> Path:
    from tqdm import tqdm

    for k in ("context_blur", "history_canvas"):
        if not 0.0 <= getattr(args, k) <= 1.0:
            raise ValueError(f"{k} is a share of examples in [0, 1], got {getattr(args, k)}")
    if not 0.0 <= args.context_noise <= 1.0:
        raise ValueError(f"context_noise is a noise level in [0, 1], got {args.context_noise}")
    if args.precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"--precision must be auto, fp32 or bf16, got {args.precision!r}")
    if args.save_every < 1:
        raise ValueError(f"--save-every must be at least 1, got {args.save_every}")
    if args.steps < 0:
        raise ValueError(f"--steps must be 0 (prepare the walks only) or more, got {args.steps}")
    if args.adv_weight < 0 or args.adv_start < 0:
        raise ValueError(f"--adv-weight and --adv-start must be 0 or more, got {args.adv_weight} and {args.adv_start}")
    if not 0.0 <= args.adv_covered <= 1.0:
        raise ValueError(f"--adv-covered is a factor in [0, 1], got {args.adv_covered}")
    if args.workers is not None and args.workers < 0:
        raise ValueError(f"--workers must be 0 or more, got {args.workers}")
    info = dist.setup(args.device)
    workers = default_workers(info.device) if args.workers is None else args.workers
    bf16 = args.precision == "bf16" or (args.precision == "auto" and info.device.type == "cuda")
    if info.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True   # fixed shapes every step
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    src = Path(args.autoencoder)
    cfg = ModelConfig.load(out / "config.json") if (out / "config.json").exists() else ModelConfig.load(src / "config.json")
    if not (out / "config.json").exists():
        cfg.generator.layout_channels = LAYOUT_CHANNELS if args.layout else 0
    elif (cfg.generator.layout_channels > 0) != args.layout:
        raise ValueError(f"{out / 'config.json'}: this run's generator was built with the layout "
                         f"{'on' if cfg.generator.layout_channels else 'off'}; resume it with --layout "
                         f"{'on' if cfg.generator.layout_channels else 'off'} or start a new --out")
    model = WorldModel(cfg)
    load_autoencoder_into(model, src)
    model.to(info.device)
    model.ae.eval().requires_grad_(False)
    cache = out / "walks.safetensors"
    if cache.exists():
        walks = _load_walks(cache)
    else:
        seeds = list(range(*args.seeds))
        walks = build_walks(model, seeds, cfg.fov_deg, info.device, progress and info.main)
        if args.init:
            # Fine-tuning: the generator was trained in its init's latent normalisation, and memory,
            # the latent range guard and every cached canvas use it too; new walks must not move it.
            init_cfg = ModelConfig.load(Path(args.init) / "config.json")
            cfg.latent_shift, cfg.latent_scale = init_cfg.latent_shift, init_cfg.latent_scale
            cfg.latent_mean_range = init_cfg.latent_mean_range
        else:
            cfg.latent_shift, cfg.latent_scale = latent_stats(walks)
            # Normalising is affine, so each frame's normalised channel means come from its raw ones:
            # no normalised copy of every latent of every walk.
            cfg.latent_mean_range = channel_mean_range(torch.cat(
                [((w.z.float().mean(dim=(2, 3)) - cfg.latent_shift) / cfg.latent_scale)[..., None] for w in walks]))
        if info.main:
            _save_walks(cache, walks)
            cfg.save(out / "config.json")
    if args.steps == 0:
        # Data only: the encoded walks and the config are in the run directory, and a later run
        # trains from them (e.g. with the time budget known once rendering is done).
        dist.cleanup(info)
        return out
    history = None
    if args.history_canvas > 0:
        if any(w.observe is None for w in walks):   # a cache from before Walk.observe was stored
            counts = walk_observe_counts(list(range(*args.seeds)), cfg.fov_deg, model.image_size)
            if len(counts) != len(walks):
                raise ValueError(f"{cache}: {len(walks)} walks, but --seeds {args.seeds[0]}:{args.seeds[1]} "
                                 f"make {len(counts)}; pass the seeds the cache was built from")
            for w, n_obs in zip(walks, counts):
                w.observe = n_obs
        # Cheap (milliseconds a frame) and derived from the walks, so rebuilt rather than cached.
        history = build_history(walks, cfg.latent_shift, cfg.latent_scale, cfg.fov_deg, cfg.memory.voxel_size,
                                cfg.memory.capacity, progress and info.main, workers=workers)
    model.cfg = cfg
    if args.adv_weight > 0 and args.context_blur <= 0 and info.main:
        print("--adv-weight without --context-blur: with clean contexts the generator's predictions are close "
              "to real latents and the discriminator has little to judge (engine/train/latent_adv.py)")
    torch.manual_seed(args.seed + info.rank)
    data_seed = args.seed + 1000 * info.rank
    rng = np.random.default_rng(data_seed)
    sampler_kwargs = dict(cells=model.cells, fov_deg=cfg.fov_deg, shift=cfg.latent_shift, scale=cfg.latent_scale,
                          context_noise=args.context_noise, context_blur=args.context_blur,
                          history_share=args.history_canvas, layout=args.layout)
    # Batches come from worker processes or from a sampler in this process, never both.
    feed = (WorkerBatches(walks, history, args.batch, data_seed, workers, info.device, args.self_rollout,
                          **sampler_kwargs) if workers else None)
    sampler = None if feed else WalkSampler(walks, rng=rng, history=history, **sampler_kwargs)
    gen = dist.wrap(model.gen, info)
    opt = torch.optim.AdamW(model.gen.parameters(), lr=args.lr, weight_decay=0.01)
    c = model.latent_channels
    adv = (LatentAdversary(c, cond_channels(c, cfg.generator.layout_channels), args.adv_weight, args.adv_start, args.adv_lr, info.device, info,
                           covered=args.adv_covered) if args.adv_weight > 0 else None)
    start, elapsed0 = 0, 0.0
    if args.init and not (out / "state.json").exists():
        model.gen.load_state_dict(widen_input(load_file(str(Path(args.init) / "generator.safetensors")), model.gen))
    if (out / "state.json").exists():
        state = load_checkpoint(out, {"generator": model.gen}, opt)
        start, elapsed0 = state["step"], float(state.get("wall_s", 0.0))
        if adv is not None:
            adv.load(out)
    if info.main:
        save_run_args(out, args, start)
    fields = (["step", "loss", "loss_covered", "loss_uncovered"] + (["g_adv", "d_loss", "adv_w"] if adv else []) + ["sec"])
    log = LossLog(out / "world_loss.csv", fields) if info.main else None
    t0 = time.time()
    step = start - 1   # a resumed run that has no steps left runs none
    bar = tqdm(range(start, args.steps), initial=start, total=args.steps, disable=not (progress and info.main),
               desc="world model")
    for step in bar:
        # Cosine decay over whichever runs out first, steps or the wall-clock budget, so a
        # time-limited run still ends at a low learning rate instead of being cut mid-schedule.
        frac = step / args.steps
        if args.time_limit_s:
            frac = max(frac, (time.time() - t0 + elapsed0) / args.time_limit_s)
        lr = args.lr * min(1.0, (step + 1) / 200) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
        for g in opt.param_groups:
            g["lr"] = lr
        item = feed.next() if feed is not None else sampler.draw(args.batch, args.self_rollout, info.device)
        # A chain (--self-rollout) is rolled out here, where the model is.
        x0, cond = _rollout(model, item, args, info.device) if isinstance(item, list) else item
        t = sample_train_t(len(x0), info.device)
        noise = torch.randn_like(x0)
        # bf16 autocast on CUDA: the weights, the optimizer and the loss stay fp32.
        with torch.autocast(info.device.type, dtype=torch.bfloat16, enabled=bf16):
            pred = gen(noisy(x0, t, noise), t, cond)
        err = (pred.float() - x0).pow(2).mean(dim=1, keepdim=True)
        loss = err.mean()
        total, g_adv, adv_w = loss, 0.0, 0.0
        if adv is not None:
            term, g_adv, adv_w = adv.generator_term(loss, pred, cond, model.gen.out.weight, step)
            total = total + term
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.gen.parameters(), 1.0)
        opt.step()
        d_loss = adv.discriminator_step(x0, pred, cond, step) if adv is not None else 0.0
        if info.main and step % 20 == 0:
            mask = channel(cond, "memory_mask", c)
            cov = (err * mask).sum() / mask.sum().clamp(min=1)
            unc = (err * (1 - mask)).sum() / (1 - mask).sum().clamp(min=1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            row = {"step": step, "loss": loss.item(), "loss_covered": cov.item(), "loss_uncovered": unc.item(),
                   "sec": time.time() - t0}
            if adv is not None:
                row.update(g_adv=g_adv, d_loss=d_loss, adv_w=adv_w)
            log.append(row)
        done = step + 1 == args.steps or bool(args.time_limit_s and time.time() - t0 + elapsed0 > args.time_limit_s)
        if info.main and ((step + 1) % args.save_every == 0 or done):
            save_checkpoint(out, {"generator": model.gen}, opt, step + 1, {"wall_s": time.time() - t0 + elapsed0})
            if adv is not None:
                adv.save(out)
            model.save(out / "model", {"step": step + 1})
            log.plot()
        if done:
            break
    if feed is not None:
        feed.close()
    if info.main:
        n, sec = step + 1 - start, time.time() - t0
        print(f"world model: {n} steps of batch {args.batch} in {sec:.0f} s ({n * args.batch / max(sec, 1e-9):.0f} "
              f"examples/s on {info.device}, {workers} batch workers, {'bf16' if bf16 else 'fp32'})")
    dist.barrier(info)
    dist.cleanup(info)
    return out / "model"
