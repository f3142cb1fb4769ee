"""ONNX export of the per-frame networks, with a manifest that detects stale exports.

    export_onnx(model, out_dir, fp16=False)  ->  out_dir/encoder.onnx, generator.onnx, decoder.onnx, manifest.json
    export_onnx(model, out_dir, int8=True)   ->  ... and decoder.int8.onnx (engine/backends/quantize.py)

Inputs and outputs carry stable names (engine.backends.networks.io_names) and a
dynamic batch axis called "batch"; every other axis is fixed by the model's config.
The manifest records the opset, the exporter, the fp16 flag, the shapes and names,
sha256 of each ONNX file and of the weights and config they came from: a later run
compares those with the model it holds and re-exports (or refuses) instead of
silently running old weights.

Exporter: torch.onnx.export(dynamo=True), the torch.export-based exporter (needs
onnxscript, a dependency). Both exporters work on torch 2.13 for these networks and
give graphs within 1e-5 of each other; dynamo is the one torch keeps -- the
TorchScript exporter is deprecated since torch 2.9 and warns on every call -- and it
writes opset 18 without the tracer's shape-specialisation warnings. It is slower
(about 5-10 s for the three networks of the default model, against under 1 s), which
only matters once: exports are cached. Where the dynamo exporter is missing or fails
(an older torch, no onnxscript) the TorchScript exporter is used instead and the
manifest says so.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import threading
import time
import warnings
from pathlib import Path

import torch

from engine.backends.base import cache_dir, sha256_file, state_hash
from engine.backends.networks import build_networks, example_inputs, io_names
from engine.backends.quantize import INT8_DECODER, quantize_decoder
from engine.model.world_model import WorldModel

MANIFEST = "manifest.json"
# 3: the decoder takes z, and the layout where the model's decoder takes it (manifest io);
# 4: the decoder folds the layout by a strided conv, not a transpose (faster in ONNX Runtime).
FORMAT = "mirage-onnx/4"
OPSET = 18
NETWORKS = ("encoder", "generator", "decoder")


class StaleExportError(ValueError):
    """An ONNX directory that does not match the model at hand (or is incomplete); the message says how."""


def weights_fingerprint(model: WorldModel) -> dict:
    """What an export is keyed by: the weights of both networks and the config that shapes them.

    Only the config the graphs depend on (network sizes, latent normalisation): a field of
    view or memory capacity changed at run time must not force a re-export.
    """
    d = model.cfg.to_dict()
    cfg = json.dumps({k: d[k] for k in ("autoencoder", "generator", "latent_scale", "latent_shift")}, sort_keys=True)
    return {"autoencoder": state_hash(model.ae), "generator": state_hash(model.gen),
            "config": hashlib.sha256(cfg.encode()).hexdigest()}


def _shapes(model: WorldModel) -> dict[str, dict[str, list]]:
    """Per network, per tensor: the shape with "batch" for the dynamic axis."""
    ex = example_inputs(model, batch=1)
    nets = build_networks(model)
    out: dict[str, dict[str, list]] = {}
    names = io_names(model)
    with torch.no_grad():
        for name in NETWORKS:
            ins, outs = names[name]
            res = nets[name](*[x.to(next(model.parameters()).device) for x in ex[name]])
            res = res if isinstance(res, tuple) else (res,)
            out[name] = {n: ["batch", *x.shape[1:]] for n, x in zip(ins + outs, list(ex[name]) + list(res))}
    return out


def _export_one(net: torch.nn.Module, args: tuple, path: Path, io: tuple[tuple[str, ...], tuple[str, ...]],
                opset: int) -> str:
    """Export one network with its (input names, output names); returns which exporter did it."""
    ins, outs = io
    name = path.stem
    # verbose=False keeps the dynamo exporter from printing progress; it also logs a warning per
    # torchvision op it cannot find (we use none): noise, silenced for the call.
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    try:
        batch = torch.export.Dim("batch", min=1, max=4096)
        onnx_log.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, args, str(path), dynamo=True, external_data=False, opset_version=opset,
                              input_names=list(ins), output_names=list(outs),
                              dynamic_shapes={n: {0: batch} for n in ins}, verbose=False)
        return "dynamo"
    except Exception as e:  # noqa: BLE001 - any failure of the new exporter: fall back to the old one
        logging.getLogger(__name__).warning("dynamo ONNX export of %s failed (%s); using the TorchScript exporter",
                                            name, e)
    finally:
        onnx_log.setLevel(level)
    path.unlink(missing_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, args, str(path), dynamo=False, opset_version=opset, input_names=list(ins),
                          output_names=list(outs), dynamic_axes={n: {0: "batch"} for n in ins + outs})
    return "torchscript"


def export_onnx(model: WorldModel, out_dir: str | Path, fp16: bool = False, opset: int = OPSET,
                int8: bool = False) -> dict:
    """Write encoder.onnx, generator.onnx, decoder.onnx and manifest.json into out_dir; returns the manifest.
    int8: also decoder.int8.onnx, the float32 decoder with its trunk quantized (calibrated on rendered
    views of training worlds: this needs the renderer's GL context, and adds a few seconds).

    Files are written into a temporary folder beside out_dir and moved in at the end,
    so an interrupted export never leaves a half-written set that looks complete.
    """
    if int8 and fp16:
        raise ValueError("an int8 decoder is made from the float32 export; fp16 and int8 do not combine")
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    device = next(model.parameters()).device
    cpu_model = model if device.type == "cpu" else _cpu_copy(model)
    nets = build_networks(cpu_model, fp16=fp16)
    ex = example_inputs(cpu_model, batch=2)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        exporters = {}
        for name in NETWORKS:
            exporters[name] = _export_one(nets[name], ex[name], tmp / f"{name}.onnx", io_names(cpu_model)[name], opset)
        int8_info = None
        if int8:
            int8_info = quantize_decoder(cpu_model, tmp / "decoder.onnx", tmp / INT8_DECODER)
        files = [f"{name}.onnx" for name in NETWORKS] + ([INT8_DECODER] if int8 else [])
        manifest = {
            "format": FORMAT,
            "opset": opset,
            "fp16": bool(fp16),
            "exporter": exporters,
            "torch": torch.__version__,
            "weights": weights_fingerprint(model),
            "io": {name: {"inputs": list(io_names(model)[name][0]), "outputs": list(io_names(model)[name][1])}
                   for name in NETWORKS},
            "shapes": _shapes(cpu_model),
            "files": {f: sha256_file(tmp / f) for f in files},
            "int8": int8_info,
            "model": {"image_size": model.image_size, "latent_channels": model.latent_channels,
                      "cells": model.cells},
            "export_seconds": round(time.perf_counter() - t0, 2),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        out.mkdir(parents=True, exist_ok=True)
        for f in [*manifest["files"], MANIFEST]:
            (tmp / f).replace(out / f)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _cpu_copy(model: WorldModel) -> WorldModel:
    import copy

    return copy.deepcopy(model).cpu()


def read_manifest(onnx_dir: str | Path) -> dict:
    path = Path(onnx_dir) / MANIFEST
    if not path.is_file():
        raise StaleExportError(f"{path}: no manifest (not an export made by `mirage export onnx`)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise StaleExportError(f"{path}: unreadable manifest ({e})") from None
    if manifest.get("format") != FORMAT:
        raise StaleExportError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def check_export(onnx_dir: str | Path, model: WorldModel | None = None, fp16: bool | None = None,
                 verify_files: bool = True, int8: bool = False) -> dict:
    """The manifest of a complete export that matches `model` (and `fp16`; with `int8`, one that has the
    int8 decoder), or StaleExportError saying why not."""
    d = Path(onnx_dir)
    manifest = read_manifest(d)
    for fname, digest in manifest["files"].items():
        f = d / fname
        if not f.is_file():
            raise StaleExportError(f"{f}: missing")
        if verify_files and sha256_file(f) != digest:
            raise StaleExportError(f"{f}: changed since export (sha256 differs from the manifest)")
    if int8 and INT8_DECODER not in manifest["files"]:
        raise StaleExportError(f"{d}: no int8 decoder (export it with `mirage export onnx --int8`)")
    if fp16 is not None and bool(manifest["fp16"]) != bool(fp16):
        raise StaleExportError(f"{d}: exported with fp16={manifest['fp16']}, wanted fp16={fp16}")
    if model is not None:
        want = weights_fingerprint(model)
        stale = [k for k, v in want.items() if manifest["weights"].get(k) != v]
        if stale:
            raise StaleExportError(f"{d}: stale export, {', '.join(stale)} changed since it was made "
                                   "(re-run `mirage export onnx --overwrite`)")
    return manifest


def cached_export(model: WorldModel, fp16: bool = False, int8: bool = False) -> Path:
    """An up-to-date export of `model` in the user's cache, made on first use (keyed by the weights' hash);
    with `int8`, one that has the int8 decoder too."""
    fp = weights_fingerprint(model)
    key = f"{fp['autoencoder'][:12]}-{fp['generator'][:12]}-{fp['config'][:8]}{'-fp16' if fp16 else ''}"
    d = cache_dir("onnx", key)
    try:
        check_export(d, model, fp16, int8=int8)
        return d
    except StaleExportError:
        pass
    if threading.current_thread() is threading.main_thread():
        export_onnx(model, d, fp16=fp16, int8=int8)
    else:
        _export_in_subprocess(model, d, fp16, int8)
        check_export(d, model, fp16, int8=int8)  # made from a saved copy: it must match these weights
    return d


def _export_in_subprocess(model: WorldModel, out: Path, fp16: bool, int8: bool = False) -> None:
    """Export from another process. Off the main thread (the explorer's worker) the dynamo
    exporter's lazy imports stalled for minutes in a Qt app here; a child process with the
    weights saved to a temporary folder has no such interaction and costs a second more."""
    import subprocess
    import sys

    with tempfile.TemporaryDirectory(prefix="mirage-export-") as tmp:
        src, dst = Path(tmp) / "model", Path(tmp) / "onnx"
        model.save(src)           # saves CPU copies of the tensors, the model stays where it is
        cmd = [sys.executable, "-m", "explorer", "export", "onnx", "--model", str(src), "--out", str(dst), "--no-check"]
        if fp16:
            cmd.append("--fp16")
        if int8:
            cmd.append("--int8")
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"ONNX export failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-500:]}")
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(dst, out)
