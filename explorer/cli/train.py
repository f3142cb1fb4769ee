"""`mirage train`: the world model's training subcommands (recipes and configure: recipe.py).

Registered from explorer/cli/main.py's SUBCOMMANDS. Nothing heavy at import time: torch
and the engine load inside the handlers.
"""
from __future__ import annotations

import os
from pathlib import Path

from explorer.cli.common import CLIError, positive_int, seed_range, set_threads


def register_train(sub) -> None:
    p = sub.add_parser("train", help="train the autoencoder or the world model (CPU, GPU, or torchrun DDP)",
                       description="Training. Runs are resumable: run the same command again to continue.")
    tsub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    a = tsub.add_parser("autoencoder", help="frame <-> latent autoencoder with a depth head")
    a.add_argument("--out", type=Path, required=True, help="run directory (checkpoints, loss CSV + PNG)")
    a.add_argument("--steps", type=positive_int, default=3000)
    a.add_argument("--batch", type=positive_int, default=32)
    a.add_argument("--lr", type=float, default=1e-3)
    a.add_argument("--seeds", type=seed_range, default=(0, 100_000), metavar="A:B", help="training scene seeds")
    a.add_argument("--config", choices=["default", "tiny"], default="default", help="network size preset")
    a.add_argument("--image-size", type=int, default=None, help="override the preset's frame size (e.g. 256)")
    _common(a)
    a.set_defaults(handler=_cmd_train_ae)
    w = tsub.add_parser("world", help="pose-conditioned generator on a trained autoencoder")
    w.add_argument("--autoencoder", type=Path, required=True, help="autoencoder run directory")
    w.add_argument("--out", type=Path, required=True, help="run directory; the model lands in OUT/model")
    w.add_argument("--steps", type=int, default=6000,
                   help="training steps; 0 renders and encodes the walks into OUT (walks.safetensors, "
                        "config.json) and stops, for a later run to train from")
    w.add_argument("--batch", type=positive_int, default=32)
    w.add_argument("--lr", type=float, default=5e-4)
    w.add_argument("--seeds", type=seed_range, default=(100_000, 100_064), metavar="A:B",
                   help="training worlds; one walk of every trajectory kind each")
    w.add_argument("--init", type=Path, default=None, metavar="MODEL_DIR",
                   help="fine-tune: start from this model's generator instead of from scratch")
    w.add_argument("--self-rollout", type=int, default=0, metavar="K",
                   help="half the batches use up to K of the model's own generated frames as context "
                        "(against drift on long walks); 0: ground-truth context only")
    w.add_argument("--self-steps", type=int, default=2, help="sampling steps for those self-generated frames")
    w.add_argument("--context-noise", type=float, default=0.1, metavar="S",
                   help="std of the noise put on the previous latent, so long rollouts don't drift on their "
                        "own errors")
    w.add_argument("--context-blur", type=float, default=0.0, metavar="P",
                   help="share of examples whose context is blurred like generated frames, so the model "
                        "learns to restore detail on long walks")
    w.add_argument("--history-canvas", type=float, default=0.0, metavar="P",
                   help="share of examples with memory whose canvas is read from a real memory holding the "
                        "walk so far, as at inference")
    w.add_argument("--adv-weight", type=float, default=0.0, metavar="W",
                   help="add a latent discriminator's loss at W times the reconstruction gradient (VQGAN-style "
                        "adaptive weight), so x0 predictions look like real latents, not their average; use with "
                        "--context-blur, where the predictions fall short of real ones; 0: none")
    w.add_argument("--adv-start", type=int, default=300, metavar="STEP",
                   help="step from which the generator gets that loss (its discriminator trains from 200 before)")
    w.add_argument("--adv-lr", type=float, default=5e-4,
                   help="the discriminator's learning rate (constant)")
    w.add_argument("--adv-covered", type=float, default=1.0, metavar="F",
                   help="that loss's weight where the memory canvas covers the view, relative to uncovered cells "
                        "(0: only where memory shows nothing; generated frames go back into memory, and "
                        "sharpening what memory shows compounds on long walks)")
    w.add_argument("--layout", choices=("on", "off"), default="on",
                   help="the generator takes the scene layout (depth, normals, material classes of the level's "
                        "geometry, never its colours); off: a layout-free generator as v1 was")
    _common(w)
    w.add_argument("--save-every", type=int, default=200, metavar="N",
                   help="checkpoint and write OUT/model every N steps (and at the end)")
    w.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes building batches and memory canvases (default: none on a CPU; on CUDA the "
                        "cores less two, at most 12)")
    w.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto: bf16 autocast on CUDA, fp32 on a CPU")
    w.set_defaults(handler=_cmd_train_world)
    d = tsub.add_parser("decoder", help="sharpen the decoder (gradient + adversarial loss), latent space frozen")
    d.add_argument("--model", type=Path, required=True,
                   help="autoencoder run or whole model directory; a whole model comes out as OUT/model")
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--steps", type=positive_int, default=800)
    d.add_argument("--batch", type=positive_int, default=16)
    d.add_argument("--lr", type=float, default=2e-4)
    d.add_argument("--gan-start", type=int, default=100, help="steps before the discriminator joins")
    d.add_argument("--adv-weight", type=float, default=0.5,
                   help="adversarial gradient at the decoder's last layer, as a multiple of the reconstruction's")
    d.add_argument("--max-adv-w", type=float, default=0.02,
                   help="cap on that adaptive weight, so a discriminator near chance is not amplified")
    d.add_argument("--latent-degrade", type=float, default=1.0,
                   help="blur/noise put on latents so the decoder also sharpens generated ones (0: off)")
    d.add_argument("--seeds", type=seed_range, default=(200_000, 300_000), metavar="A:B")
    d.add_argument("--pairs", type=Path, nargs="+", default=None, metavar="FILE",
                   help="mirage train decoder-pairs file(s), joined: train on latents the generator really "
                        "made too")
    d.add_argument("--pairs-share", type=float, default=0.5, help="share of each batch taken from --pairs")
    d.add_argument("--aligned-psnr", type=float, default=20.0, metavar="DB",
                   help="a pair whose generated frame matched ground truth this well (dB) is a target; "
                        "others keep only their colour and get detail from the discriminator")
    d.add_argument("--grow-blocks", type=int, default=0, metavar="N",
                   help="add N residual blocks to the decoder's full-feature level; each starts as the "
                        "identity, so the grown decoder starts out decoding as the old one")
    d.add_argument("--blur-passes", type=int, default=1, metavar="N",
                   help="box-blur passes of the latent degradation (more: blurred latents keep only colour "
                        "fields, and a layout decoder learns to take edges from the layout)")
    d.add_argument("--layout", choices=("on", "off", "auto"), default="auto",
                   help="on: the decoder takes the full-resolution scene layout (added at zero to a decoder "
                        "without it); auto: on when the model's generator takes the layout")
    d.add_argument("--layout-lr-mult", type=float, default=10.0, metavar="X",
                   help="the layout input's learning rate as a multiple of --lr (it starts at zero)")
    d.add_argument("--p-drop-layout", type=float, default=0.15, metavar="P",
                   help="share of examples decoded with the layout off, so one decoder serves both modes")
    d.add_argument("--appearance-dim", type=int, default=0, metavar="D",
                   help="add per-room appearance codes of D dimensions (a conditional VAE's latent: the "
                        "posterior reads ground truth in training, a session draws or observes them); "
                        "0: the model's own")
    d.add_argument("--kl-weight", type=float, default=1e-4, metavar="W",
                   help="weight of the codes' KL term (nats per room segment) against the reconstruction")
    d.add_argument("--kl-warmup", type=int, default=200, metavar="N",
                   help="steps over which the KL weight rises from zero (against posterior collapse)")
    d.add_argument("--freq-weight", type=float, default=0.1, metavar="W",
                   help="weight holding the texture field's frequencies to each room segment's measured spectral peak")
    d.add_argument("--detail-weight", type=float, default=0.0, metavar="W",
                   help="with codes: weight of the loss on each frame's pattern detail alone (the frame less its "
                        "local mean over a few pixels, on surfaces with a segment), so that patterns are not "
                        "outweighed by colour; 0 (default) for none")
    d.add_argument("--appearance-lr", type=float, default=3e-4, metavar="LR",
                   help="learning rate of the codes' posterior encoder")
    d.add_argument("--p-drop-codes", type=float, default=0.1, metavar="P",
                   help="share of examples decoded with every code at the prior's mean, as memory off runs")
    d.add_argument("--snapshot-every", type=int, default=0, metavar="N",
                   help="also keep a loadable copy of the autoencoder every N steps in OUT/snapshots/ "
                        "(the checkpoint itself is overwritten)")
    _common(d)
    d.set_defaults(handler=_cmd_train_decoder)
    t = tsub.add_parser("texture", help="train the decoder's texture field alone (every other weight frozen) to "
                                         "draw the room patterns its pattern locks describe; or, with --part "
                                         "refine, its full-resolution refiner alone")
    t.add_argument("--model", type=Path, required=True, help="whole model directory with appearance codes")
    t.add_argument("--out", type=Path, required=True, help="run directory; the model is written to OUT/model")
    t.add_argument("--steps", type=positive_int, default=1500)
    t.add_argument("--batch", type=positive_int, default=12)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--seeds", type=seed_range, default=(200_000, 200_048), metavar="A:B",
                   help="training worlds the views are drawn in")
    t.add_argument("--views", type=positive_int, default=16, help="views a world, at random free poses")
    t.add_argument("--detail-weight", type=float, default=3.0, metavar="W",
                   help="weight of the loss on pattern detail alone, beside the reconstruction's")
    t.add_argument("--part", choices=("texture", "invented", "refine"), default="texture",
                   help="texture: the texture field; invented: the field's output head for latents the generator "
                        "invented (added to a model that has none, trained on latents of the levels drawn without "
                        "their patterns); "
                        "refine: the refiner that sharpens the frame along the layout (added to a model that has none)")
    t.add_argument("--refine-width", type=positive_int, default=16, metavar="C",
                   help="channels of a refiner added to a model without one")
    t.add_argument("--energy-weight", type=float, default=0.0, metavar="W",
                   help="weight of a loss on how much detail each 8-pixel window has against ground truth "
                        "(wherever in the window it falls)")
    t.add_argument("--blur", type=float, nargs=2, default=(0.2, 0.6), metavar=("A", "B"),
                   help="how far the examples' encoder latents are softened towards colour fields, as generated "
                        "ones come out: alternate views at soften amounts A and B (4 passes)")
    _common(t)
    t.set_defaults(handler=_cmd_train_texture)
    k = tsub.add_parser("look-prior", help="measure the looks (codes and pattern locks) of training worlds' room "
                                            "segments that a session draws unseen rooms from")
    k.add_argument("--model", type=Path, required=True, help="whole model directory with appearance codes")
    k.add_argument("--out", type=Path, required=True, help="model directory to write, with the look prior")
    k.add_argument("--seeds", type=seed_range, default=(100_000, 100_048), metavar="A:B", help="training worlds")
    k.add_argument("--views", type=positive_int, default=48, help="views a world, at random free poses")
    k.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    k.add_argument("--no-progress", action="store_true")
    k.set_defaults(handler=_cmd_look_prior)
    q = tsub.add_parser("decoder-pairs", help="run the model along walks of training worlds and keep the latents "
                                               "it generates with the ground truth at their poses (decoder data)")
    q.add_argument("--model", type=Path, default=None, help="whole model directory (default: the shipped model)")
    q.add_argument("--out", type=Path, required=True, help="pairs file to write (.safetensors)")
    q.add_argument("--seeds", type=seed_range, default=(200_000, 200_016), metavar="A:B",
                   help="training worlds; every trajectory kind is walked in each")
    q.add_argument("--kinds", default="turnaround,retrace,out-and-back,explore",
                   help="comma-separated trajectory kinds walked in each world")
    q.add_argument("--every", type=int, default=3, help="keep every Nth generated frame")
    q.add_argument("--explore-frames", type=int, default=400, help="length of the explore walks")
    q.add_argument("--memory-share", type=float, default=0.6, help="share of walks run with memory on")
    q.add_argument("--steps", type=positive_int, default=None, help="sampling steps (default: the model's)")
    q.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(handler=_cmd_decoder_pairs)
    r = tsub.add_parser("latent-range", help="measure the range real frames' latents keep and store it in the "
                                              "model's config (the guard against colour drift in long walks)")
    r.add_argument("--model", type=Path, required=True, help="model directory; its config.json is updated")
    r.add_argument("--seeds", type=seed_range, default=(600, 612), metavar="A:B", help="training worlds")
    r.add_argument("--frames", type=int, default=200, help="explore walk length per world (every 4th is encoded)")
    r.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    r.set_defaults(handler=_cmd_latent_range)
    v = tsub.add_parser("average", help="weight-by-weight mean of models that share a network (e.g. a "
                                         "fine-tune and the model it started from)")
    v.add_argument("--models", type=Path, nargs="+", required=True, metavar="DIR", help="model directories")
    v.add_argument("--shares", type=float, nargs="+", default=None, metavar="W",
                   help="one weight per model, normalised to sum 1 (default: equal)")
    v.add_argument("--part", choices=("generator", "autoencoder"), default="generator",
                   help="the network averaged; the other and config.json are the first model's")
    v.add_argument("--temperature", type=float, default=None,
                   help="default sampling temperature written to the new config.json")
    v.add_argument("--out", type=Path, required=True, help="new model directory")
    v.set_defaults(handler=_cmd_average)

    from explorer.cli.recipe import register as register_recipe

    register_recipe(tsub)

def _common(p) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--time-limit", type=float, default=0.0, metavar="MIN",
                   help="stop with a checkpoint after this many minutes (0: run all steps)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")


def _cmd_train_ae(args) -> int:
    set_threads(args.threads)
    from engine.model.config import ModelConfig, tiny_config
    from engine.train.ae import AETrainArgs, train_autoencoder

    cfg = tiny_config() if args.config == "tiny" else ModelConfig()
    cfg_path = args.out / "config.json"
    if cfg_path.exists():  # resuming: the saved config wins so the weights keep matching it
        cfg = ModelConfig.load(cfg_path)
    elif args.image_size:
        cfg.autoencoder.image_size = args.image_size
    out = train_autoencoder(cfg, AETrainArgs(out=str(args.out), steps=args.steps, batch=args.batch, lr=args.lr,
                                             seeds=args.seeds, device=args.device, seed=args.seed,
                                             time_limit_s=60 * args.time_limit), progress=not args.no_progress)
    print(f"autoencoder checkpoint in {out}; loss curve {out / 'ae_loss.png'}")
    return 0


def _cmd_train_world(args) -> int:
    set_threads(args.threads)
    from engine.train.world import WorldTrainArgs, train_world

    model_dir = train_world(WorldTrainArgs(autoencoder=str(args.autoencoder), out=str(args.out), steps=args.steps,
                                           batch=args.batch, lr=args.lr, seeds=args.seeds, device=args.device,
                                           seed=args.seed, time_limit_s=60 * args.time_limit,
                                           init=str(args.init or ""), self_rollout=args.self_rollout,
                                           self_steps=args.self_steps, context_noise=args.context_noise,
                                           context_blur=args.context_blur,
                                           history_canvas=args.history_canvas, workers=args.workers,
                                           save_every=args.save_every, precision=args.precision,
                                           adv_weight=args.adv_weight, adv_start=args.adv_start,
                                           adv_lr=args.adv_lr, adv_covered=args.adv_covered,
                                           layout=args.layout == "on"),
                            progress=not args.no_progress)
    if int(os.environ.get("RANK", "0")) == 0:
        if args.steps == 0:
            print(f"walks and config written to {args.out}; train with the same --out to use them")
        else:
            print(f"world model written to {model_dir}; loss curve {args.out / 'world_loss.png'}")
    return 0


def _cmd_train_decoder(args) -> int:
    set_threads(args.threads)
    from engine.train.decoder import DecoderTrainArgs, train_decoder

    out = train_decoder(DecoderTrainArgs(model=str(args.model), out=str(args.out), steps=args.steps, batch=args.batch,
                                         lr=args.lr, gan_start=args.gan_start, adv_weight=args.adv_weight,
                                         max_adv_w=args.max_adv_w,
                                         latent_degrade=args.latent_degrade,
                                         pairs=tuple(str(p) for p in args.pairs or ()), pairs_share=args.pairs_share,
                                         aligned_psnr=args.aligned_psnr,
                                         grow_blocks=args.grow_blocks, snapshot_every=args.snapshot_every,
                                         layout=args.layout, p_drop_layout=args.p_drop_layout,
                                         blur_passes=args.blur_passes, layout_lr_mult=args.layout_lr_mult,
                                         appearance_dim=args.appearance_dim, kl_weight=args.kl_weight, kl_warmup=args.kl_warmup,
                                         appearance_lr=args.appearance_lr, p_drop_codes=args.p_drop_codes,
                                         freq_weight=args.freq_weight, detail_weight=args.detail_weight,
                                         seeds=args.seeds, device=args.device,
                                         seed=args.seed, time_limit_s=60 * args.time_limit),
                        progress=not args.no_progress)
    print(f"sharpened decoder in {out}; loss curve {args.out / 'decoder_loss.png'}")
    return 0


def _cmd_train_texture(args) -> int:
    set_threads(args.threads)
    from engine.train.texture import TextureTrainArgs, train_texture
    from engine.world.geometry import TRAIN_SEED_LIMIT

    if args.seeds[1] > TRAIN_SEED_LIMIT:
        raise CLIError(f"mirage train texture: --seeds {args.seeds[0]}:{args.seeds[1]} reaches past the "
                       f"training worlds (seeds below {TRAIN_SEED_LIMIT})")
    try:
        out = train_texture(TextureTrainArgs(model=str(args.model), out=str(args.out), steps=args.steps,
                                             batch=args.batch, lr=args.lr, seeds=args.seeds, views=args.views,
                                             detail_weight=args.detail_weight, device=args.device, seed=args.seed,
                                             time_limit_s=60 * args.time_limit, part=args.part,
                                             refine_width=args.refine_width, energy_weight=args.energy_weight,
                                             blur=tuple(args.blur)),
                            progress=not args.no_progress)
    except ValueError as e:
        raise CLIError(f"mirage train texture: {e}") from None
    what = {"texture": "texture field", "invented": "head for invented latents", "refine": "refiner"}[args.part]
    print(f"{what} trained; model in {out}; loss curve {args.out / (args.part + '_loss.png')}")
    return 0


def _cmd_look_prior(args) -> int:
    set_threads(args.threads)
    from engine.train.look_prior import build_look_prior

    try:
        out = build_look_prior(args.model, args.out, args.seeds, args.views, progress=not args.no_progress)
    except ValueError as e:
        raise CLIError(f"mirage train look-prior: {e}") from None
    print(f"model with its look prior written to {out}")
    return 0


def _cmd_decoder_pairs(args) -> int:
    set_threads(args.threads)
    from engine.model.world_model import WorldModel
    from engine.train.generated_pairs import (
        PairArgs,
        collect_pairs,
        describe,
        save_pairs,
    )

    model = WorldModel.load(args.model)
    pairs = collect_pairs(model, PairArgs(seeds=args.seeds, every=args.every, explore_frames=args.explore_frames,
                                          memory_share=args.memory_share, steps=args.steps, seed=args.seed,
                                          kinds=tuple(k.strip() for k in args.kinds.split(",") if k.strip())),
                          progress=not args.no_progress)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_pairs(args.out, pairs, str(args.model or "default"))
    print(describe(pairs))
    print(f"{len(pairs['psnr'])} pairs written to {args.out}")
    return 0


def _cmd_average(args) -> int:
    from engine.train.average import AverageError, average_models

    try:
        out = average_models(args.models, args.out, args.shares, args.part, args.temperature)
    except (AverageError, ValueError) as e:
        raise CLIError(f"mirage train average: {e}") from None
    print(f"averaged {args.part} of {len(args.models)} models into {out}")
    return 0


def _cmd_latent_range(args) -> int:
    set_threads(args.threads)
    from engine.model.latent_range import measure_latent_range
    from engine.model.world_model import WorldModel
    from engine.world.geometry import TRAIN_SEED_LIMIT

    if args.seeds[1] > TRAIN_SEED_LIMIT:
        raise CLIError(f"mirage train latent-range: --seeds {args.seeds[0]}:{args.seeds[1]} reaches past the "
                         f"training worlds (seeds below {TRAIN_SEED_LIMIT}); eval worlds are never measured")
    model = WorldModel.load(args.model)
    model.cfg.latent_mean_range = measure_latent_range(model, list(range(*args.seeds)), frames=args.frames)
    path = args.model / "config.json"
    model.cfg.save(path)
    lo = min(b[0] for b in model.cfg.latent_mean_range)
    hi = max(b[1] for b in model.cfg.latent_mean_range)
    print(f"{path}: latent_mean_range over {len(range(*args.seeds))} worlds, channel means {lo:.2f} .. {hi:.2f}")
    return 0
