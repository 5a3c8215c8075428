"""Gadre et al.'s own method (calibrate.gadre_method): its laws recovered from simulated runs, and on the real
testbed the figures the authors' code gives on the same split."""

import numpy as np
import pytest

from calibrate import gadre_method, model, validate
from dynsim import calibrations

TRUE_LOSS = (1.7, 400.0, 1500.0, 0.3)  # E, A, B, η
TRUE_ERROR = (0.75, 40.0, 1.3)  # ε, k, γ


def test_the_loss_and_error_laws_recover_known_values():
    rng = np.random.default_rng(0)
    N = np.array([1e7, 8e7, 1.5e8, 4e8, 1e7])
    D = np.array([20, 20, 20, 20, 320]) * N
    L = gadre_method._loss_law((N, D), *TRUE_LOSS)
    theta = gadre_method.fit_loss(N, D, L)
    big = (1.4e9, 20 * 1.4e9)  # a model 3.5x the largest fitted, as the testbed asks
    assert gadre_method._loss_law(big, *theta) == pytest.approx(gadre_method._loss_law(big, *TRUE_LOSS), rel=2e-3)
    losses = np.linspace(2.6, 4.5, 12)
    err = gadre_method._error_law(losses, *TRUE_ERROR) + 0.002 * rng.standard_normal(len(losses))
    phi = gadre_method.fit_error(losses, err)
    assert gadre_method._error_law(2.5, *phi) == pytest.approx(gadre_method._error_law(2.5, *TRUE_ERROR), abs=0.01)


def test_on_the_testbed_it_gives_the_authors_figures():
    """The authors' own code on this split: 1.15% mean relative loss error, 2.94 points of average accuracy."""
    cal = calibrations.get("gadre2024")
    obs = model.observations(cal.dataset())
    held = np.array([c.size >= cal.hold_out["size_from"] for c in obs.configs])
    point, draws = gadre_method.predict(obs, held)
    truth = obs.values[held]
    is_loss = np.array([m == "loss" for m in obs.metrics])[held]
    assert np.mean(np.abs(point[is_loss] / truth[is_loss] - 1)) == pytest.approx(0.0115, abs=0.001)
    assert np.mean(np.abs(point[~is_loss] - truth[~is_loss])) == pytest.approx(2.94, abs=0.05)
    rows = validate.authors_holdout("gadre2024", None, obs, held, "held-out", 0.9)
    assert len(rows) == held.sum() and all(r["lo"] <= r["predicted"] <= r["hi"] for r in rows)
