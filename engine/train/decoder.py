"""`mirage train decoder`: sharpen the decoder with the encoder (and so the latent space) frozen.

An MSE-trained decoder regresses to the mean and blurs: on eval frames it kept only
~15% of ground truth's image-gradient energy, where a 0.5-pixel Gaussian blur already
keeps 55%. This stage adds what image autoencoders in the field use against that: an
L1 loss on image gradients and a small patch discriminator (hinge loss) whose weight
is set adaptively from the gradient norms at the decoder's last layer (as VQGAN).
The latent space does not move, so a generator trained on it stays valid and the
sharper decoder can be swapped into a finished model.

With `pairs` (a `mirage train decoder-pairs` file, engine/train/generated_pairs.py) part
of every batch is latents the generator really made, decoded against the ground truth at
their poses where they match it and held to their own colours where they do not: what
the decoder is shown in use, rather than encoder latents blurred to look like it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

from engine.model.appearance import gaussian_kl, look_layout
from engine.model.autoencoder import (
    SURFACE,
    Autoencoder,
    grow_decoder,
    to_model_image,
    upgrade_legacy_lock,
    widen_layout_input,
)
from engine.model.config import ModelConfig
from engine.model.layout_cells import LAYOUT_CHANNELS, PIXEL_CHANNELS, split_surface
from engine.model.pattern_spectrum import (
    high_pass,
    pattern_lock,
)
from engine.model.segments import SEGMENT_CLASSES
from engine.train.ae import FramePool, pick_device
from engine.train.checkpoint import (
    LossLog,
    load_checkpoint,
    load_optimizer,
    save_checkpoint,
    save_optimizer,
    save_run_args,
    save_tensors,
)
from engine.train.latent_adv import adaptive_weight, hinge_d_loss


class PatchDiscriminator(nn.Module):
    """Strided convs to a 16x16 map of real/fake logits (each sees a ~30 px patch)."""

    def __init__(self, ch: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, ch, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(ch, 2 * ch, 4, 2, 1), nn.GroupNorm(8, 2 * ch), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * ch, 4 * ch, 4, 2, 1), nn.GroupNorm(8, 4 * ch), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * ch, 1, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]


@dataclass
class DecoderTrainArgs:
    model: str                     # directory with config.json + autoencoder.safetensors
    out: str
    steps: int = 800
    batch: int = 16
    lr: float = 2e-4
    seeds: tuple[int, int] = (200_000, 300_000)
    gan_start: int = 100           # steps of gradient loss alone before the discriminator joins
    adv_weight: float = 0.5
    max_adv_w: float = 0.02        # cap on the adaptive weight itself (see below)
    save_every: int = 100
    device: str = "auto"
    seed: int = 0
    time_limit_s: float = 0.0
    latent_degrade: float = 1.0    # strength of the blur/noise put on latents (0: light noise only)
    blur_passes: int = 1           # box-blur passes of that blur: more makes blurred latents keep only colour
                                   # fields, so a layout decoder must take edges from the layout
    pairs: str | tuple[str, ...] = ""  # mirage train decoder-pairs file(s): latents the generator really made
    pairs_share: float = 0.5       # share of each batch taken from those pairs
    aligned_psnr: float = 20.0     # a pair whose shown frame matched ground truth this well is a target
    grow_blocks: int = 0           # residual blocks added to the decoder's full-feature level, identity at first
    snapshot_every: int = 0        # keep a loadable copy of the autoencoder every N steps (0: none)
    layout: str = "auto"           # on: the decoder takes the full-resolution layout (added, zero at first,
                                   # to a decoder without it); off; auto: on when the model's generator takes it
    p_drop_layout: float = 0.15    # share of examples decoded with the layout off (zeros), as the generator's
    layout_lr_mult: float = 10.0   # the layout input's learning rate over the decoder's (it starts at zero)
    appearance_dim: int = 0        # add per-room appearance codes of this many dimensions (engine/model/appearance.py)
                                   # to a decoder without them; 0: the model's own (none, or what it has)
    kl_weight: float = 1e-4        # weight of the codes' KL term (nats per segment) against the reconstruction
    kl_warmup: int = 200           # steps over which that weight rises from zero (else the prior wins before the
                                   # decoder has learned to read the codes, and they stay empty: posterior collapse)
    appearance_lr: float = 3e-4    # the posterior encoder's learning rate (it starts from nothing)
    freq_weight: float = 0.1       # holds the texture field's frequencies to each segment's measured spectral peak
    detail_weight: float = 0.0     # the loss on pattern detail alone (detail_loss), beside the reconstruction's
    p_drop_codes: float = 0.1      # share of examples decoded with every code at the prior's mean (memory off)
    code_targets: bool = True      # with codes, generated latents are decoded against ground truth wherever
                                   # the layout was on: the code says the look the generator could not know


def degrade_latents(z: torch.Tensor, strength: float, passes: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Make encoder latents look like generated ones: some noise, and for half the batch a
    partial blur (generated latents average over plausible futures and come out smoother).
    The decoder then learns to restore texture on such latents too, not only on clean ones;
    with only clean latents it stayed as blurry on generated frames as before. Returns the
    latents and which of them were blurred (B,) bool."""
    b = z.shape[0]
    sigma = 0.03 + strength * 0.07 * torch.rand(b, 1, 1, 1, device=z.device)
    noise = sigma * torch.randn_like(z)
    blurred = torch.zeros(b, 1, 1, 1, dtype=torch.bool, device=z.device)
    if strength > 0:
        a = strength * 0.6 * torch.rand(b, 1, 1, 1, device=z.device)
        blurred = torch.rand(b, 1, 1, 1, device=z.device) < 0.5
        z = soften(z, a * blurred, passes)
    return z + noise, blurred.view(b)


def soften(z: torch.Tensor, amount: float | torch.Tensor, passes: int = 1) -> torch.Tensor:
    """Blend latents (N, C, S, S) towards their 3x3 box blur (replicate padding), `passes` times;
    amount is a number or a tensor that broadcasts (e.g. (N, 1, 1, 1), one per latent). How the
    generator's outputs differ from encoder latents: smoother. Used here on the decoder's inputs
    and by the generator's trainer on its contexts (engine/train/world_data.py)."""
    for _ in range(passes):
        blurred = F.avg_pool2d(F.pad(z, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        z = z + amount * (blurred - z)
    return z


def reconstruction_terms(y: torch.Tensor, logd: torch.Tensor, x: torch.Tensor, depth: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per example (B,): the reconstruction loss (MSE + L1 + L1 on image gradients + log-depth L1),
    its MSE and its gradient L1. y, x (B, 3, H, W) in [-1, 1]; logd (B, 1, H, W); depth (B, H, W) metres."""
    per = lambda t: t.flatten(1).mean(1)  # noqa: E731
    mse = per((y - x) ** 2)
    gy, gx = image_gradients(y)
    ty, tx = image_gradients(x)
    grad_l1 = per((gy - ty).abs()) + per((gx - tx).abs())
    dl = per((logd - depth[:, None].clamp(min=0.05).log()).abs())
    return mse + 0.1 * per((y - x).abs()) + 0.5 * grad_l1 + 0.1 * dl, mse, grad_l1


def generated_terms(y: torch.Tensor, logd: torch.Tensor, x: torch.Tensor, depth: torch.Tensor,
                    anchor: torch.Tensor, aligned: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss on decoded generated latents, per example (B,): the full reconstruction against ground
    truth where the generated frame matched it (`aligned`); elsewhere the generator made other
    content than the world has, and a target there would teach the mean of both, so only the
    frame's colour per latent cell is held to what the decoder showed before (the anchor) and
    the discriminator alone asks for detail. Also returns the MSE on aligned examples."""
    rec, mse, _ = reconstruction_terms(y, logd, x, depth)
    held = (F.adaptive_avg_pool2d(y, anchor.shape[-1]) - anchor).abs().flatten(1).mean(1)
    return torch.where(aligned, rec, held), mse[aligned]


def frequency_loss(field: nn.Module, code: torch.Tensor, lock: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """How far (in log frequency, L1) the texture field's frequencies for each segment's code sit from
    the pattern its ground truth shows (`lock`, engine/model/pattern_spectrum.pattern_lock), over the
    segments and axes with a clear pattern. The frequency a code draws where nothing was observed
    then follows from the code, as the posterior read it, instead of being searched for by gradient
    descent through sines."""
    n, s, d = code.shape
    classes = torch.zeros(n, s, 6, device=code.device)
    k = torch.arange(s, device=code.device) % len(SEGMENT_CLASSES)
    classes[:, torch.arange(s), torch.tensor(SEGMENT_CLASSES, device=code.device)[k]] = 1.0
    cond = torch.cat([code, classes, lock[..., 6:8]], dim=-1).permute(0, 2, 1)[..., None]   # (N, D + 8, S, 1)
    pred = field.frequency(cond)[..., 0].permute(0, 2, 1)                       # (N, S, 2)
    use = lock[..., :2] * present[..., None].to(pred.dtype)
    return ((pred - lock[..., 2:4]).abs() * use).sum() / use.sum().clamp(min=1.0)


def detail_loss(y: torch.Tensor, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the decoded frames' pattern detail alone, on the pixels with an appearance
    segment: each colour channel less its local mean over a few pixels within the segments
    (pattern_spectrum.high_pass, the scale that tells a pattern from the light). In the plain
    reconstruction a pattern's thin lines weigh little beside a room's colour; with the pattern
    lock its phase is known, so its detail can be asked for as such."""
    valid = (seg >= 0).to(y.dtype)
    diff = high_pass(y, valid) - high_pass(x, valid)
    return (diff ** 2 * valid).sum() / (3.0 * valid.sum()).clamp(min=1.0)


def decoder_layout_wanted(choice: str, cfg: ModelConfig) -> bool:
    """--layout on|off|auto against the source model: auto is on when its generator or decoder takes
    the layout; off is refused for a decoder that already takes it (it cannot be taken away)."""
    if choice not in ("on", "off", "auto"):
        raise ValueError(f"--layout must be on, off or auto, got {choice!r}")
    has = cfg.autoencoder.layout_channels > 0
    if choice == "off" and has:
        raise ValueError("this model's decoder takes the scene layout (autoencoder.layout_channels); "
                         "it cannot be trained with --layout off")
    return choice == "on" or has or (choice == "auto" and cfg.generator.layout_channels > 0)


def train_decoder(args: DecoderTrainArgs, progress: bool = True) -> Path:
    from tqdm import tqdm

    if args.max_adv_w <= 0 or args.adv_weight < 0:
        raise ValueError(f"--max-adv-w must be above 0 and --adv-weight 0 or more, got {args.max_adv_w} "
                         f"and {args.adv_weight}")
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    dev = pick_device(args.device)
    src, out = Path(args.model), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = ModelConfig.load(src / "config.json")
    state = load_file(str(src / "autoencoder.safetensors"))
    cfg.autoencoder, state = upgrade_legacy_lock(cfg.autoencoder, state)
    if args.snapshot_every < 0:
        raise ValueError(f"--snapshot-every must be 0 or more, got {args.snapshot_every}")
    if args.grow_blocks < 0:
        raise ValueError(f"--grow-blocks must be 0 or more, got {args.grow_blocks}")
    if args.grow_blocks:
        # Grown from the source model on every start, resumes included: the checkpoint then
        # replaces the weights, and the architecture is the same each time.
        old = cfg.autoencoder
        cfg.autoencoder = replace(old, decoder_extra_blocks=old.decoder_extra_blocks + args.grow_blocks)
        state = grow_decoder(state, old, args.grow_blocks, Autoencoder(cfg.autoencoder))
    use_layout = decoder_layout_wanted(args.layout, cfg)
    if use_layout and not cfg.autoencoder.layout_channels:
        # The layout input is added with its outputs at zero (engine/model/autoencoder.LayoutInput):
        # the decoder starts out decoding exactly as the source model's. Added on every start, like growth.
        cfg.autoencoder = replace(cfg.autoencoder, layout_channels=PIXEL_CHANNELS)
        fresh = Autoencoder(cfg.autoencoder).state_dict()
        state = {**{k: v for k, v in fresh.items() if k.startswith("decoder.layout.")}, **state}
    if use_layout and cfg.autoencoder.layout_channels == LAYOUT_CHANNELS:
        # A geometry-only layout input (v2 stages 2-3) gains the surface-coordinate channels at zero:
        # it decodes as before until they learn (engine/model/autoencoder.widen_layout_input).
        state = widen_layout_input(state, LAYOUT_CHANNELS, PIXEL_CHANNELS)
        cfg.autoencoder = replace(cfg.autoencoder, layout_channels=PIXEL_CHANNELS)
    if args.appearance_dim < 0:
        raise ValueError(f"--appearance-dim must be 0 or more, got {args.appearance_dim}")
    if args.appearance_dim and cfg.autoencoder.appearance_dim not in (0, args.appearance_dim):
        raise ValueError(f"this model's codes have {cfg.autoencoder.appearance_dim} dimensions; "
                         f"--appearance-dim {args.appearance_dim} cannot change that")
    if args.appearance_dim and not cfg.autoencoder.appearance_dim:
        if not use_layout:
            raise ValueError("--appearance-dim needs the scene layout (its segments are the layout's rooms)")
        # The codes append to the layout input at zero weight, and the posterior encoder starts fresh:
        # the decoder decodes as before until the codes learn to say something.
        state = widen_layout_input(state, PIXEL_CHANNELS, PIXEL_CHANNELS + args.appearance_dim)
        # The code columns start small but not zero: at zero no gradient reaches the posterior until
        # they have grown, and the KL term has emptied the codes by then.
        w = state["decoder.layout.embed.1.weight"]
        cols = slice(PIXEL_CHANNELS * w.shape[1] // (PIXEL_CHANNELS + args.appearance_dim), None)
        w[:, cols] = 0.01 * torch.randn_like(w[:, cols])
        cfg.autoencoder = replace(cfg.autoencoder, layout_channels=PIXEL_CHANNELS + SURFACE + args.appearance_dim,
                                  appearance_dim=args.appearance_dim)
        fresh = Autoencoder(cfg.autoencoder).state_dict()
        state = {**{k: v for k, v in fresh.items() if k.startswith(("appearance.", "decoder.texture."))}, **state}
    if not (args.kl_weight >= 0 and args.freq_weight >= 0 and args.detail_weight >= 0 and args.appearance_lr > 0 and 0 <= args.p_drop_codes < 1):
        raise ValueError(f"--kl-weight, --freq-weight and --detail-weight must be 0 or more, --appearance-lr above 0 and --p-drop-codes "
                         f"in [0, 1); got {args.kl_weight}, {args.freq_weight}, {args.appearance_lr}, {args.p_drop_codes}")
    if not args.layout_lr_mult > 0:
        raise ValueError(f"--layout-lr-mult must be above 0, got {args.layout_lr_mult}")
    if args.blur_passes < 1:
        raise ValueError(f"--blur-passes must be at least 1, got {args.blur_passes}")
    if not 0 <= args.p_drop_layout < 1:
        raise ValueError(f"--p-drop-layout must be in [0, 1), got {args.p_drop_layout}")
    cfg.save(out / "config.json")
    ae = Autoencoder(cfg.autoencoder)
    ae.load_state_dict(state)
    ae.to(dev)
    ae.encoder.requires_grad_(False).eval()
    disc = PatchDiscriminator().to(dev)
    # The layout input starts at zero and must grow from nothing while the rest of the decoder is
    # only adjusted: at the decoder's learning rate it had barely moved after 400 steps (mean |w|
    # 0.004) and decoded blurred latents as it did without it, so it learns `layout_lr_mult` faster.
    new = list(ae.decoder.layout.parameters()) if ae.decoder.layout is not None else []
    own = {id(q) for q in new} | {id(q) for q in (ae.decoder.texture.parameters() if ae.decoder.texture else ())}
    old = [q for q in ae.decoder.parameters() if id(q) not in own]
    groups = [{"params": old, "lr": args.lr}] + ([{"params": new, "lr": args.lr * args.layout_lr_mult}] if new else [])
    if ae.appearance is not None:   # the posterior and the texture field start from nothing
        groups.append({"params": list(ae.appearance.parameters()) + list(ae.decoder.texture.parameters()),
                       "lr": args.appearance_lr})
    opt_g = torch.optim.Adam(groups, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(disc.parameters(), lr=args.lr, betas=(0.5, 0.9))
    start, elapsed0 = 0, 0.0
    if (out / "state.json").exists():
        st = load_checkpoint(out, {"autoencoder": ae, "discriminator": disc}, opt_g)
        # The discriminator's Adam moments too, so a resumed run goes on with the same
        # discriminator rather than one whose optimiser restarts cold against a trained decoder.
        load_optimizer(out / "discriminator_optim.safetensors", opt_d)
        start, elapsed0 = st["step"], float(st.get("wall_s", 0.0))
    save_run_args(out, args, start)
    pairs, n_gen = None, 0
    if args.pairs:
        from engine.train.generated_pairs import load_pairs

        a = cfg.autoencoder
        paths = [args.pairs] if isinstance(args.pairs, (str, Path)) else list(args.pairs)
        pairs = load_pairs(paths, (a.latent_channels, a.latent_size, a.latent_size), a.image_size)
        if use_layout:
            from engine.train.generated_pairs import pair_layouts

            pairs["pixels"], pairs["surface"] = pair_layouts(pairs, a.image_size, cfg.fov_deg, a.max_depth)
        if not 0 < args.pairs_share < 1:
            raise ValueError(f"--pairs-share must be between 0 and 1, got {args.pairs_share}")
        n_gen = max(1, round(args.batch * args.pairs_share))
    fields = ["step", "mse", "grad_l1", "g_adv", "d_loss", "adv_w", "noise", "kl", "freq", "sec"] + (["gen_mse", "gen_loss"] if pairs else [])
    log = LossLog(out / "decoder_loss.csv", fields)
    pool = FramePool(cfg.autoencoder.image_size, args.seeds, 32, 32, rng, cfg.fov_deg,
                     max_depth=cfg.autoencoder.max_depth if use_layout else None)
    last = ae.decoder.net[-2].weight  # the conv before PixelShuffle: where the adaptive weight is measured
    noise_ema, adv_mult = None, 1.0
    t0 = time.time()
    bar = tqdm(range(start, args.steps), initial=start, total=args.steps, disable=not progress, desc="decoder")
    for step in bar:
        if step > start and step % 150 == 0:
            pool.refresh()
        rgb_u8, depth, lay, surface = pool.batch_with_layout(args.batch - n_gen)
        x = to_model_image(rgb_u8).to(dev)
        with torch.no_grad():
            z = ae.encoder(x)
        z, _ = degrade_latents(z, args.latent_degrade, args.blur_passes)
        nr = len(z)
        if pairs is not None:  # generated latents decode in the same pass, after the encoder's
            gi = torch.from_numpy(rng.integers(0, len(pairs["psnr"]), n_gen))
            x_gen = to_model_image(pairs["rgb"][gi]).to(dev)
            z = torch.cat([z, pairs["latent"][gi].to(dev)])
            aligned = (pairs["psnr"][gi] >= args.aligned_psnr).to(dev)
            if use_layout:
                lay = torch.cat([lay, pairs["pixels"][gi].float()])
                surface = torch.cat([surface, pairs["surface"][gi]])
        kl = freq = torch.zeros((), device=dev)
        if use_layout:   # some examples with the layout off, so the one decoder serves both modes
            keep = (torch.rand(len(lay), 1, 1, 1) >= args.p_drop_layout).float()
            lay = (lay * keep).to(dev)
            if ae.appearance is not None:
                # The posterior reads each example's own ground truth (encoder latents and pairs alike).
                uv, seg = split_surface(surface)
                x_all = x if pairs is None else torch.cat([x, x_gen])
                seg = seg.to(dev)
                mu, logvar, present = ae.appearance(x_all, lay, seg, uv.to(dev))
                code = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
                kl = gaussian_kl(mu, logvar, present)
                with torch.no_grad():   # the pattern as ground truth shows it, drawn locked to it
                    lock = pattern_lock(x_all, uv.to(dev), seg) * present[..., None]
                freq = frequency_loss(ae.decoder.texture, code, lock, present)
                on = (keep * (torch.rand(len(lay), 1, 1, 1) >= args.p_drop_codes).float()).to(dev)
                lay = look_layout(lay, (uv * keep).to(dev), seg, torch.cat([lock, code], dim=-1) * on.view(-1, 1, 1))
        y_all, logd_all = ae.decoder(z, lay if use_layout else None)
        y, logd = y_all[:nr], logd_all[:nr]
        rec_i, mse_i, grad_i = reconstruction_terms(y, logd, x, depth.to(dev))
        mse, rec, grad_l1 = mse_i.mean(), rec_i.mean(), grad_i.mean()
        gen_row = {}
        if pairs is not None:
            if ae.appearance is not None and args.code_targets:
                aligned = aligned | pairs["layout"][gi].bool().to(dev)
            gen_i, gen_mse = generated_terms(y_all[nr:], logd_all[nr:], x_gen, pairs["depth"][gi].float().to(dev),
                                             pairs["anchor"][gi].to(dev),
                                             aligned)
            # Each example counts once, encoder latent or generated, so the share sets the balance.
            rec = (rec_i.sum() + gen_i.sum()) / len(z)
            gen_row = {"gen_mse": gen_mse.mean().item() if len(gen_mse) else "", "gen_loss": gen_i.mean().item()}
            x = torch.cat([x, x_gen])  # the discriminator's real frames: ground truth of both kinds
        use_gan = step >= args.gan_start
        g_adv = torch.zeros((), device=dev)
        w = 0.0
        if use_gan:
            g_adv = -disc(y_all).mean()
            # Capped: while the discriminator is healthy the weight sits at 0.003-0.016 here. When it
            # sits at chance (hinge loss 2.0; seen with --adv-weight 1, fresh and resumed) its
            # gradients shrink, the ratio grows 100-1000x and amplifies their noise into dark halos
            # on every edge (probe sharpness 0.36 -> 1.19 at -3.3 dB in 700 steps).
            # The cap also falls off (stages 4-10) while decoded generated frames carry more image-gradient
            # energy than their ground truth (detail beyond the world's is the discriminator's noise).
            with torch.no_grad():
                gy, gx = image_gradients(y_all[nr:] if pairs is not None else y_all)
                ty, tx = image_gradients(x[nr:] if pairs is not None else x)
                ratio = float((gy.abs().mean() + gx.abs().mean()) / (ty.abs().mean() + tx.abs().mean() + 1e-8))
            noise_ema = ratio if noise_ema is None else 0.9 * noise_ema + 0.1 * ratio
            adv_mult = adv_mult * 0.9 if noise_ema > 1.0 else min(1.0, adv_mult * 1.02)
            w = min(adaptive_weight(rec, g_adv, last, args.adv_weight), args.max_adv_w * adv_mult)
        beta = args.kl_weight * min(1.0, step / args.kl_warmup) if args.kl_warmup > 0 else args.kl_weight
        detail = torch.zeros((), device=dev)
        if ae.appearance is not None and args.detail_weight > 0:
            detail = detail_loss(y_all, x, seg)
        loss = rec + w * g_adv + beta * kl + args.freq_weight * freq + args.detail_weight * detail
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([q for g in groups for q in g["params"]], 1.0)
        opt_g.step()
        d_loss = torch.zeros(())
        if use_gan or step >= args.gan_start - 20:  # warm the discriminator up a little first
            d_loss = hinge_d_loss(disc(x), disc(y_all.detach()))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        if step % 10 == 0:
            row = {"step": step, "mse": mse.item(), "grad_l1": grad_l1.item(), "g_adv": g_adv.item(),
                   "d_loss": d_loss.item(), "adv_w": w, "noise": noise_ema or 0.0, "kl": kl.item(), "freq": freq.item(), "sec": time.time() - t0 + elapsed0, **gen_row}
            log.append(row)
            bar.set_postfix(psnr=f"{10 * math.log10(4 / max(mse.item(), 1e-10)):.2f}", d=f"{d_loss.item():.2f}")
        done = step + 1 == args.steps or bool(args.time_limit_s and time.time() - t0 + elapsed0 > args.time_limit_s)
        if args.snapshot_every and (step + 1) % args.snapshot_every == 0:
            # The adversarial run swings between sharper and smoother states (see docs/MODEL.md,
            # stage 13), so the checkpoint, overwritten, is not enough: the eval set chooses among
            # these. Each is a directory the probe, `--model` and `mirage eval` read as it is.
            snap = out / "snapshots" / f"step{step + 1:07d}"
            snap.mkdir(parents=True, exist_ok=True)
            cfg.save(snap / "config.json")
            save_tensors(snap / "autoencoder.safetensors", ae.state_dict())
        if (step + 1) % args.save_every == 0 or done:
            save_optimizer(out / "discriminator_optim.safetensors", opt_d)
            save_checkpoint(out, {"autoencoder": ae, "discriminator": disc}, opt_g, step + 1,
                            {"wall_s": time.time() - t0 + elapsed0})
            log.plot()
        if done:
            break
    save_tensors(out / "autoencoder.safetensors", ae.state_dict())
    gen_path = src / "generator.safetensors"
    if gen_path.exists():  # a whole model went in: a whole model comes out, with the sharper decoder
        import shutil

        (out / "model").mkdir(exist_ok=True)
        cfg.save(out / "model" / "config.json")
        save_tensors(out / "model" / "autoencoder.safetensors", ae.state_dict())
        shutil.copyfile(gen_path, out / "model" / "generator.safetensors")
        from engine.model.world_model import write_checksums

        write_checksums(out / "model")
        return out / "model"
    return out
