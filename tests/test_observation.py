"""The observation model's run-shared deviation: the block density is the multivariate normal it stands for, in
numpy and pytensor alike, and the predictive draws it once per (run, group)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.stats import multivariate_normal

from dynsim import observation


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_block_density_is_the_normal_with_a_shared_deviation_per_block(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 12))
    groups = rng.integers(0, 3, n)
    runs = rng.integers(0, 3, n)
    block, n_blocks = observation.run_blocks([f"r{r}" for r in runs], groups)
    resid, var = rng.normal(0, 2, n), rng.uniform(0.2, 4.0, n)
    tau = np.array([0.5, 1.5, 3.0])[groups]
    got = observation.block_log_density(resid, var, tau, block, n_blocks)
    for b in range(n_blocks):
        i = block == b
        cov = np.diag(var[i]) + tau[i][0] ** 2 * np.ones((i.sum(), i.sum()))
        assert got[b] == pytest.approx(multivariate_normal(np.zeros(i.sum()), cov).logpdf(resid[i]), rel=1e-9)


def test_block_density_agrees_in_pytensor_and_leaves_losses_out():
    import pytensor.tensor as pt

    block, n_blocks = observation.run_blocks(["a", "a", "a", "b", "b"], [0, 0, 3, 1, 1])
    assert block[2] == -1 and n_blocks == 2  # a loss is not in a block
    resid, var, tau = np.array([1.0, -0.5, 9.0, 2.0, 1.0]), np.array([1.0, 2.0, 1.0, 0.5, 0.5]), np.full(5, 1.2)
    numeric = observation.block_log_density(resid, var, tau, block, n_blocks)
    symbolic = observation.block_log_density(pt.as_tensor_variable(resid), pt.as_tensor_variable(var),
                                             pt.as_tensor_variable(tau), block, n_blocks, pt).eval()
    np.testing.assert_allclose(symbolic, numeric, rtol=1e-12)
    draws = observation.block_log_density(np.tile(resid, (3, 1)), np.tile(var, (3, 1)), np.tile(tau, (3, 1)), block,
                                          n_blocks)
    np.testing.assert_allclose(draws, np.tile(numeric, (3, 1)), rtol=1e-12)  # leading draw axes
