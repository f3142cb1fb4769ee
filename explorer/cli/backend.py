"""`mirage export onnx`: the per-frame networks as ONNX for ONNX Runtime and TensorRT.

Registered from explorer/cli/main.py's SUBCOMMANDS. Nothing heavy at import time: torch,
onnx and the engine load inside the handler. `export` is a group so that other
export formats can sit beside `onnx` later.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("export", help="export the world model for other runtimes (ONNX)",
                       description="Export the world model's networks for other inference runtimes.")
    esub = p.add_subparsers(dest="format", metavar="FORMAT", required=True)
    o = esub.add_parser(
        "onnx", help="encoder, generator step and decoder as ONNX (ONNX Runtime, TensorRT)",
        description="Writes encoder.onnx (rgb -> z), generator.onnx (x_t, t, cond -> x0: one flow step), "
                    "decoder.onnx (z -> rgb, depth) with a dynamic batch axis, and manifest.json (opset, "
                    "hashes of the weights they came from, shapes, fp16 flag) so a stale export is detected. "
                    "Latents are the model's normalised ones. See docs/BACKENDS.md.")
    o.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the .onnx files")
    o.add_argument("--model", type=Path, default=None, metavar="DIR",
                   help="model directory (default: the shipped model)")
    o.add_argument("--fp16", action="store_true",
                   help="float16 weights and arithmetic inside (float32 inputs/outputs): for TensorRT's strongly "
                        "typed networks")
    o.add_argument("--int8", action="store_true",
                   help="also write decoder.int8.onnx: the decoder with its 3x3 trunk convolutions in int8, "
                        "calibrated on rendered views of two training worlds (needs the renderer's GL); ONNX "
                        "Runtime on the CPU runs it in place of decoder.onnx")
    o.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    o.add_argument("--overwrite", action="store_true", help="replace an existing export in DIR")
    o.add_argument("--no-check", action="store_true",
                   help="skip running the export with ONNX Runtime against torch after writing it")
    o.set_defaults(handler=_cmd_export_onnx)


def _refuse_existing(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} is a file; --out takes a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} already exists and is not empty; pass --overwrite to replace the export in it")
    from export.files import check_writable_dir

    # Before the export (tens of seconds): a folder that cannot be written is named now, not after.
    existing = next(p for p in (out, *out.parents) if p.exists())   # the export makes the folders below it
    check_writable_dir(existing, "--out")


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    if args.int8 and args.fp16:
        raise ValueError("--int8 quantizes the float32 decoder; it does not combine with --fp16")
    _refuse_existing(args.out, args.overwrite)
    from engine.backends.onnx_export import OPSET, export_onnx
    from engine.model.world_model import WorldModel

    model = WorldModel.load(args.model)
    manifest = export_onnx(model, args.out, fp16=args.fp16, opset=args.opset or OPSET, int8=args.int8)
    for name, digest in manifest["files"].items():
        size = (args.out / name).stat().st_size
        print(f"  {name:18s} {size / 1e6:6.2f} MB  sha256 {digest[:12]}")
    exporters = sorted(set(manifest["exporter"].values()))
    precision = "fp16" if args.fp16 else "fp32" + (f", {manifest['int8']['quantized_convs']} decoder convolutions "
                                                      "in int8" if args.int8 else "")
    print(f"wrote {args.out} (opset {manifest['opset']}, {precision}, "
          f"{'/'.join(exporters)} exporter, {manifest['export_seconds']:.1f} s)")
    if not args.no_check:
        print(_parity_line(model, args.out, args.fp16))
        if args.int8:
            print(_int8_line(model, args.out))
    return 0


def _int8_line(model, out: Path) -> str:
    """The int8 decoder's frames against the float32 decoder's, on views of eval worlds."""
    try:
        from engine.backends.ort_backend import FIDELITY_WORLDS, int8_fidelity

        f = int8_fidelity(model, out)
    except Exception as e:  # noqa: BLE001 - the export is written; the check is a courtesy
        return f"int8 check skipped: {type(e).__name__}: {e}"
    worlds = ", ".join(f"{w:,}" for w in FIDELITY_WORLDS)
    return (f"int8 decoder vs float32, PSNR over {f['frames']} views of worlds {worlds}: "
            f"median {f['psnr_median']:.1f} dB, lowest {f['psnr_min']:.1f} dB")


def _parity_line(model, out: Path, fp16: bool) -> str:
    """Run the export with ONNX Runtime on random inputs against torch: a broken export shows at once."""
    try:
        from engine.backends.ort_backend import network_parity

        worst = network_parity(model, out)
    except Exception as e:  # noqa: BLE001 - the export is written; the check is a courtesy
        return f"check skipped: {type(e).__name__}: {e}"
    limit = 5e-2 if fp16 else 1e-3
    verdict = "ok" if max(worst.values()) <= limit else f"ABOVE {limit:g}"
    parts = ", ".join(f"{k} {v:.1e}" for k, v in worst.items())
    return f"onnxruntime vs torch, max abs difference: {parts} ({verdict})"
