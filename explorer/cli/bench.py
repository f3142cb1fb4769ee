"""`mirage bench`: speed and memory, measured (never asserted by timed unit tests).

One run gives, by default: the whole step and each stage on torch; frames/s and
p50/p99 latency per backend that can run here; and the memory comparison (our
latent memory vs an RGB point cloud on the same walk, and the latent memory's
per-frame cost as it fills, with a PNG of that curve). `--render` adds the
ground-truth renderer; `--soak N` walks N frames and reports resident memory
and frames/s drift. Registered from explorer/cli/main.py's SUBCOMMANDS; imports
nothing heavy at the top.
"""
from __future__ import annotations

from pathlib import Path

from explorer.cli.common import CLIError, parse_resolution, positive_int, seed_arg


def register(sub) -> None:
    p = sub.add_parser("bench", help="measure speed and memory: step, backends, latent vs point-cloud memory",
                       description="Benchmarks on this machine. Default: WorldSession.step on torch (whole step and "
                                   "each stage), every backend that can run here, and the memory comparison. "
                                   "--render adds the ground-truth renderer, --soak N a long walk.")
    p.add_argument("--model", type=Path, default=None, help="model directory (default: the shipped model)")
    p.add_argument("--steps", type=positive_int, default=None, help="sampling steps (default: the model's)")
    p.add_argument("--step-frames", type=positive_int, default=200, help="timed generated frames per backend")
    p.add_argument("--backends", default="torch,onnxruntime,tensorrt", metavar="NAMES",
                   help="backends to time (comma-separated); those that cannot run here are reported and skipped. "
                        "onnxruntime-fp32 times ONNX Runtime with its float32 decoder instead of the int8 one; "
                        "listed with onnxruntime, the two take turns pose by pose")
    p.add_argument("--cuda-graphs", action="store_true", help="on CUDA also time torch with CUDA graphs")
    p.add_argument("--memory", choices=["on", "off"], default="on", help="memory during the step benchmark")
    p.add_argument("--layout", choices=["on", "off"], default="on",
                   help="the scene layout during the step, memory and soak benchmarks (models that take it; timed as its own stage)")
    p.add_argument("--memory-frames", type=positive_int, default=500,
                   help="frames of the memory comparison walk (enough to fill the default capacity)")
    p.add_argument("--no-step", action="store_true", help="skip the step and backend benchmarks")
    p.add_argument("--no-memory-bench", action="store_true", help="skip the memory comparison")
    p.add_argument("--soak", type=positive_int, default=None, metavar="N",
                   help="walk N frames with memory on: resident memory and frames/s at start and end")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.add_argument("--render", action="store_true", help="ground-truth renderer and scene layout throughput")
    p.add_argument("--frames", type=positive_int, default=512, help="render benchmark frames")
    p.add_argument("--resolution", type=parse_resolution, default=(128, 128), metavar="WxH",
                   help="render benchmark resolution")
    p.add_argument("--batch", default="1,64", metavar="B[,B...]", help="render batch sizes to time (default 1,64)")
    p.add_argument("--scene-seed", type=seed_arg, default=1_000_000, help="render benchmark world")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the results as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json")
    p.add_argument("--plot", type=Path, default=None, metavar="PNG",
                   help="memory scaling plot (default: beside --json as <name>.scaling.png)")
    p.set_defaults(handler=run)


def _backends(args, result: dict, step: dict) -> None:
    from engine.backends.ort_backend import FLOAT_DECODER_NAME
    from engine.backends.select import backend_availability
    from engine.bench.backend import bench_backend, bench_family, bench_interleaved

    names = [n.strip() for n in args.backends.split(",") if n.strip()]
    available = backend_availability(args.device)
    options = dict(frames=args.step_frames, model_dir=args.model, steps=args.steps, device=args.device,
                   memory=args.memory == "on", layout=args.layout == "on")
    paired = {}
    if {"onnxruntime", FLOAT_DECODER_NAME} <= set(names) and available["onnxruntime"][0]:
        # Both precisions on the same poses in turn: on a shared machine only that compares them fairly.
        paired = bench_interleaved(["onnxruntime", FLOAT_DECODER_NAME], **options)
    for name in names:
        ok, why = available.get(bench_family(name)[0], (False, f"unknown backend {name!r}"))
        if not ok:                                   # say so and move on; never time a fallback under its name
            print(f"  {name}: not run here ({why})")
            result.setdefault("skipped_backends", {})[name] = why
            continue
        # The step benchmark already is the torch run on this walk: reuse it, don't time torch twice.
        r = step if name == "torch" else paired.get(name) or bench_backend(name, **options)
        if r["backend"] != name and not r["backend"].startswith(name):
            print(f"  {name}: not run here ({r['message']})")
            result.setdefault("skipped_backends", {})[name] = r["message"]
            continue
        key = r["backend"]
        result["backends"][key] = r
        print(f"  {key:<16}{r['fps']:>8.1f} frames/s   p50 {r['latency_ms_p50']:.1f} ms   "
              f"p99 {r['latency_ms_p99']:.1f} ms")
        if args.cuda_graphs and key.startswith("torch") and args.device.startswith("cuda"):
            g = bench_backend(name, frames=args.step_frames, model_dir=args.model, steps=args.steps,
                              device=args.device, memory=args.memory == "on", cuda_graphs=True,
                              layout=args.layout == "on")
            result["backends"][key + "-graphs"] = g
            print(f"  {key + '-graphs':<16}{g['fps']:>8.1f} frames/s   p50 {g['latency_ms_p50']:.1f} ms")


def _memory(args, result: dict) -> None:
    from engine.bench.memory import bench_memory, plot_scaling

    m = bench_memory(args.model, frames=args.memory_frames, device=args.device, layout=args.layout == "on")
    result["memory"] = m
    lat, rgb = m["latent_bytes_per_frame"], m["rgb_pointcloud_bytes_per_frame"]
    print(f"memory, {m['frames']} frames of one explore walk (capacity {m['capacity']} points, "
          f"layout {m['layout']})")
    print(f"  bytes per stored frame: latent {lat:,.0f}  RGB point cloud {rgb:,.0f}  ({rgb / lat:.1f}x fewer)")
    print(f"  read per frame: latent {m['latent_read_ms']:.2f} ms  RGB point cloud {m['rgb_read_ms']:.1f} ms "
          f"({m['rgb_read_ms'] / m['latent_read_ms']:.0f}x faster; cloud {m['rgb_read_ms_last']:.0f} ms at the end)")
    print("  read+write ms as it fills: " + ", ".join(f"{p:,.0f} pts {ms:.2f}" for p, ms in m["scaling"]))
    plot = args.plot or (args.json.with_name(args.json.stem + ".scaling.png") if args.json else None)
    if plot is not None:
        print(f"  scaling plot: {plot_scaling(m['scaling'], plot)}")


def run(args) -> int:
    if args.json is not None:   # before any work: a bad path must not cost the whole run
        from export.files import check_output_file

        check_output_file(args.json, "--json", args.overwrite)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from engine.bench.walk import machine_info

    result: dict = {"machine": machine_info(args.device), "backends": {}}
    if not args.no_step:
        from engine.bench.step import bench_step, format_table

        step = bench_step(args.model, frames=args.step_frames, steps=args.steps, memory=args.memory == "on",
                          device=args.device, layout=args.layout == "on")
        print(format_table(step))
        result["step"] = step
        print("backends (whole step, memory " + args.memory + ")")
        _backends(args, result, step)
    if not args.no_memory_bench:
        _memory(args, result)
    if args.render:
        try:
            batches = [int(b) for b in args.batch.split(",") if b.strip()]
        except ValueError:
            raise CLIError(f"--batch must be whole numbers separated by commas, got {args.batch!r}") from None
        from engine.bench.render import bench_render, format_render_table

        for what in ("render", "layout"):   # the layout is a stage of its own for layout-conditioned models
            r = bench_render(frames=args.frames, resolution=args.resolution, batch_sizes=batches,
                             scene_seed=args.scene_seed, what=what)
            print(format_render_table(r))
            result[what] = r
    if args.soak:
        from engine.bench.memory import soak

        s = soak(args.model, frames=args.soak, device=args.device, layout=args.layout == "on")
        result["soak"] = s
        grow = s["rss_growth_after_full"]
        print(f"soak {s['frames']} frames: memory full at frame {s['memory_full_at_frame']}, resident "
              f"{s['rss_when_full_bytes'] or 0:,} -> {s['rss_end_bytes']:,} bytes"
              + (f" ({100 * grow:+.1f}% after full)" if grow is not None else "")
              + f"; {s['fps_start']:.1f} -> {s['fps_end']:.1f} frames/s ({100 * s['fps_drift']:+.1f}%)")
    if args.no_step and args.no_memory_bench and not args.render and not args.soak:
        raise CLIError("nothing to benchmark: drop --no-step / --no-memory-bench, or add --render or --soak")
    if args.json is not None:
        from engine.files import atomic_json

        atomic_json(args.json, result)
        print(f"wrote {args.json}")
    return 0
