"""`mirage eval`: fidelity, consistency and sharpness of a model, memory on vs off, on eval worlds.

Registered from explorer/cli/main.py's SUBCOMMANDS. Nothing heavy at import time: torch
and the engine load inside the handler.
"""
from __future__ import annotations

from pathlib import Path

from explorer.cli.common import positive_int, seed_range, set_threads, temperature_arg


def register_eval(sub) -> None:
    p = sub.add_parser("eval", help="fidelity and consistency, memory on vs off, on eval worlds",
                       description="Runs each trajectory with memory on and off (same seed): the observe frames "
                                   "are ground-truth observations, the rest are generated.")
    p.add_argument("--trajectories", type=Path, nargs="*", default=[], metavar="T.json")
    p.add_argument("--kinds", default=None, help="build trajectories on the fly: comma-separated kinds")
    p.add_argument("--seeds", type=seed_range, default=None, metavar="A:B", help="eval seeds for --kinds")
    p.add_argument("--json", type=Path, required=True, metavar="OUT.json")
    p.add_argument("--model", type=Path, default=None, help="model directory (default: the shipped model)")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (the same for memory on and off)")
    p.add_argument("--temperature", type=temperature_arg, default=None,
                   help="scale of the sampler's starting noise (default: the model's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--contact-sheet", type=Path, default=None, metavar="PNG",
                   help="save frames 0, 250, 500, ... of the first explore trajectory (gt / on / off)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json / --contact-sheet")
    p.add_argument("--perceptual-every", type=positive_int, default=4, metavar="N",
                   help="lpips_gt and fd_alex on every N-th generated frame (their AlexNet is the slow part of "
                        "an eval; 1: every frame)")
    p.add_argument("--layout", choices=("on", "off"), default="on",
                   help="generate with the level's scene layout (geometry only: depth, normals, material classes) "
                        "or without it, as the pure world model")
    p.add_argument("--sheet-every", type=positive_int, default=250, metavar="N",
                   help="the contact sheet shows every N-th frame")
    p.add_argument("--allow-training-seeds", action="store_true",
                   help="also measure trajectories of training worlds (seeds below 1,000,000), which the "
                        "model has seen: their numbers are not held-out results")
    p.set_defaults(handler=_cmd_eval)


def _cmd_eval(args) -> int:
    from engine.trajectory import KINDS, read_trajectory
    from engine.world.geometry import TRAIN_SEED_LIMIT
    from export.files import check_output_file

    # Outputs first: a bad path must not cost the whole run.
    check_output_file(args.json, "--json", args.overwrite)
    if args.contact_sheet is not None:
        check_output_file(args.contact_sheet, "--contact-sheet", args.overwrite)
    named = [(str(t), read_trajectory(t)) for t in args.trajectories]
    seen = [f"{name} (scene {t.scene_seed})" for name, t in named if t.scene_seed < TRAIN_SEED_LIMIT]
    if seen and not args.allow_training_seeds:
        raise ValueError(f"{', '.join(seen[:3])}: a training world (seeds below {TRAIN_SEED_LIMIT:,}), which the "
                         f"model has seen, so its numbers would not be held-out results; eval worlds are "
                         f"{TRAIN_SEED_LIMIT:,} and up (assets/eval/), or pass --allow-training-seeds")
    if args.kinds:
        kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"--kinds: unknown kind(s) {unknown}; choose from {', '.join(KINDS)}")
        if args.seeds is None:
            raise ValueError("--kinds needs --seeds A:B (eval seeds, e.g. 1000000:1000004)")
        set_threads(args.threads)
        from engine.eval import eval_trajectories_for
        from engine.model.world_model import WorldModel

        size = WorldModel.load(args.model).image_size
        named += eval_trajectories_for(kinds, range(*args.seeds), size)
    if not named:
        raise ValueError("nothing to evaluate: give --trajectories T.json ... or --kinds K --seeds A:B")
    set_threads(args.threads)
    from engine.eval import run_eval
    from engine.files import atomic_json

    result = run_eval(named, args.model, args.steps, args.seed, args.device,
                      contact_sheet_path=args.contact_sheet, temperature=args.temperature,
                      perceptual_every=args.perceptual_every, layout=args.layout == "on",
                      sheet_every=args.sheet_every)
    if seen:
        result["training_worlds"] = seen   # said in the file too, not only on the command line
    atomic_json(args.json, result)
    print(format_summary(result))
    print(f"wrote {args.json}")
    return 0


def format_summary(result: dict) -> str:
    lines = [f"{'':<16}{'psnr_gt':>9}{'ssim_gt':>9}{'revisit':>9}{'sharp':>7}   (memory on / off)"]
    groups = [("all", result["summary"])] + sorted(result["by_kind"].items())
    for name, s in groups:
        on, off = s["memory_on"], s["memory_off"]
        lines.append(f"{name:<16}{on['psnr_gt']:>9.2f}{on['ssim_gt']:>9.3f}{on['psnr_revisit']:>9.2f}"
                     f"{on['sharpness_ratio']:>7.2f}   on")
        lines.append(f"{'':<16}{off['psnr_gt']:>9.2f}{off['ssim_gt']:>9.3f}{off['psnr_revisit']:>9.2f}"
                     f"{off['sharpness_ratio']:>7.2f}   off   (ae ceiling {s['ae_ceiling_psnr']:.2f} dB, "
                     f"sharp {s['ae_ceiling_sharpness']:.2f})")
    return "\n".join(lines)
