"""Shared test setup: headless Qt and matplotlib, small fixtures.

Environment defaults are set before anything imports Qt or matplotlib, so tests
run the same on a desktop, on CI without a display, and under xvfb.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")
# ONNX exports and TensorRT engines that tests make (engine/backends) go to a throwaway cache, not the user's.
if "MIRAGE_CACHE_DIR" not in os.environ:
    os.environ["MIRAGE_CACHE_DIR"] = tempfile.mkdtemp(prefix="mirage-test-cache-")
    atexit.register(shutil.rmtree, os.environ["MIRAGE_CACHE_DIR"], True)

import pytest  # noqa: E402

# The coded tiny model is shared by every module that uses it (built once a session): a fixture a
# module imports itself is that module's own.
from model_fixtures import coded_dir  # noqa: E402,F401  (pytest fixture)

TRAIN_SEED = 7            # a training-range scene for quick tests
EVAL_SEED = 1_000_123     # an evaluation-range scene


@pytest.fixture(scope="session")
def train_seed() -> int:
    return TRAIN_SEED


@pytest.fixture(scope="session")
def eval_seed() -> int:
    return EVAL_SEED


@pytest.fixture(scope="session")
def level():
    from engine.world.levels import generate_level

    return generate_level(TRAIN_SEED)


@pytest.fixture(scope="session")
def egl():
    """Skip with a clear reason where no headless GL context can be made."""
    from engine.world.renderer import egl_available

    if not egl_available():
        if os.environ.get("MIRAGE_REQUIRE_GL"):  # CI installs EGL: a missing context is a failure there
            pytest.fail("no headless EGL context although MIRAGE_REQUIRE_GL is set")
        pytest.skip("no headless EGL context (install libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri)")
    return True
