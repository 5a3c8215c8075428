"""Bayesian calibration (PyMC): the joint model, NUTS fitting with diagnostics, validation."""

import os
from pathlib import Path

# PyTensor's compile cache (first compile ~20 s+) lives in the project's cache folder, not ~/.pytensor.
CACHE = Path(os.environ.get("DYNSIM_CACHE", Path(__file__).resolve().parent.parent / ".cache" / "dynsim"))
os.environ.setdefault("PYTENSOR_FLAGS", f"base_compiledir={CACHE / 'pytensor'}")
