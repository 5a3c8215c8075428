"""The bundled calibration: provenance matches the bundled data; diagnostics pass; validate is honest."""

import json

import numpy as np
import pytest

from calibrate.model import observations
from dynsim import posterior, results
from dynsim.config import parse_config


@pytest.fixture(scope="module")
def bundled():
    return posterior.load(posterior.bundled_path("evolm")), results.from_evolm_csv()


def test_bundled_posterior_was_fitted_to_the_bundled_data(bundled):
    post, ds = bundled
    assert post.meta["data_hash"] == ds.attrs["data_hash"]
    assert post.diagnostic_problems() == []
    d = post.meta["diagnostics"]
    assert d["rhat_max"] <= 1.01 and d["ess_bulk_min"] > 400 and d["chains"] >= 4


def test_posterior_reproduces_the_data_it_was_fitted_to(bundled):
    post, ds = bundled
    obs = observations(ds)
    draws = post.predict(obs.configs, obs.tasks, obs.metrics, noise=True)
    lo, hi = np.percentile(draws, [5, 95], axis=0)
    inside = (lo <= obs.values) & (obs.values <= hi)
    assert 0.8 <= inside.mean() <= 1.0
    assert np.median(np.abs(np.median(draws, axis=0) - obs.values)) < 2.5


def test_validate_reports_every_metric_with_honest_coverage(bundled):
    from calibrate import validate
    post, ds = bundled
    report = validate.loco(post, observations(ds))
    overall = report["summary"][-1]
    assert overall["metric"] == "all" and overall["n"] == 94  # 100 numbers, 6 averages scored beside their tasks
    assert 0.7 <= overall["coverage"] <= 1.0  # honest: neither overconfident nor absurdly wide
    assert overall["mean_width"] < 25
    text = validate.format_report(report)
    assert "greedy_pass@1" in text and "pass@16" in text and "0shot_acc" in text


@pytest.mark.slow
def test_fit_cli_writes_a_diagnosed_posterior(tmp_path):
    from dynsim.cli import main
    out = tmp_path / "post.npz"
    code = main(["fit", "-o", str(out), "--draws", "300", "--tune", "300", "--chains", "2", "--quiet"])
    post = posterior.load(out)
    assert out.with_suffix(".nc").exists()
    # an R-hat retry doubles the draws: the posterior holds those of the attempt it reports
    assert post.n_draws == 2 * post.meta["diagnostics"]["draws"] and post.n_draws in (600, 1200, 2400)
    assert set(post.meta["diagnostics"]) >= {"rhat_max", "ess_bulk_min", "ess_tail_min", "divergences"}
    assert code == (0 if not post.diagnostic_problems() else 2)


def test_gadre_calibration_was_fitted_on_the_small_runs_only():
    post, ds = posterior.load(posterior.bundled_path("gadre2024")), results.from_gadre_csv()
    assert post.meta["data_hash"] == ds.attrs["data_hash"] and post.diagnostic_problems() == []
    held = post.meta["held_out"]
    assert held["rule"] == "size >= 1e+09" and len(held["configs"]) == 5  # nine ≥1.3B runs: 5 (size, tokens) × corpora
    assert all(parse_config(c).size >= 1e9 for c in held["configs"])
    assert not set(held["configs"]) & set(post.meta["observed"]["configs"])
    assert all(parse_config(c).size < 1e9 for c in post.meta["observed"]["configs"])
    assert post.meta["scales"]["N_ref"] == 1e8 and post.meta["scales"]["loss_ref"] > 0  # the small runs' own scales
    assert post.corpora == list(results.GADRE_CORPORA)


def test_validate_gadre_scores_the_held_out_runs_beside_least_squares(capsys):
    from dynsim.cli import main
    assert main(["validate", "--calibration", "gadre2024", "--boot", "2"]) == 0
    out = capsys.readouterr().out
    assert "held-out (size >= 1e+09)" in out and "lsq-2step" in out
    bayes_loss = next(line for line in out.splitlines() if line.split()[:2] == ["bayes", "loss"])
    # relative error in percent: 0.96% measured (issue 3's goal 1%); 2% fails only a real regression
    assert bayes_loss.split()[2] == "9" and float(bayes_loss.split()[-1].rstrip("%")) < 2
    # average accuracy over the 46 tasks from the predicted loss: MAE 0.69 points, 8 of 9 in their 90% intervals
    # measured (goals: 1.5 points, about 9 in 10); 1.5 and 7 of 9 fail only a real regression
    bayes_acc = next(line.split() for line in out.splitlines() if line.split()[:2] == ["bayes", "acc"])
    assert bayes_acc[2] == "9" and float(bayes_acc[3]) < 1.5 and float(bayes_acc[4].rstrip("%")) >= 77


def test_predict_gadre_per_corpus(capsys):
    from dynsim.cli import main
    assert main(["predict", "--calibration", "gadre2024", "--size", "1.3B", "--pretrain", "26BT", "--corpus", "rpj",
                 "--json"]) == 0
    pred = {p["task"]: p for p in json.loads(capsys.readouterr().out)["predictions"]}
    assert set(pred) == {"c4_val", results.GADRE_AVG_TASK}
    assert 2.0 < pred["c4_val"]["lo"] < pred["c4_val"]["mean"] < pred["c4_val"]["hi"] < 3.5
    assert main(["predict", "--calibration", "gadre2024", "--pretrain", "26BT", "--corpus", "pile"]) == 2
    assert "unknown pretraining corpus" in capsys.readouterr().err


def test_validate_compares_the_two_forms_on_the_same_runs(capsys):
    """PSIS-LOO of the smoothmax and compute-only forms on the runs both were fitted to, then both scored on the
    held-out large runs (issue 3, deliverable 3)."""
    from dynsim.cli import main
    assert main(["validate", "--calibration", "gadre2024", "--compare", "gadre2024_compute"]) == 0
    out = capsys.readouterr().out
    assert "model comparison by PSIS-LOO" in out
    assert "smoothmax (gadre2024)" in out and "compute (gadre2024_compute)" in out
    losses = [line.split() for line in out.splitlines() if line.split()[1:2] == ["loss"]]
    assert {r[0] for r in losses} == {"bayes-smoothmax", "bayes-compute"} and all(r[2] == "9" for r in losses)


def test_compare_refuses_a_posterior_of_other_runs(capsys):
    from dynsim.cli import main
    assert main(["validate", "--calibration", "gadre2024", "--compare", "evolm"]) == 2
    assert "fitted on other runs" in capsys.readouterr().err


def test_a_failed_r_hat_names_the_parameters_whose_chains_disagree():
    """Chains in separate modes (one chain apart from three): the gate's log names that parameter first, with
    its per-chain means; a well-mixed parameter does not lead."""
    import arviz as az
    import numpy as np

    from calibrate import fit

    rng = np.random.default_rng(0)
    mode = np.where(np.arange(4) == 0, 0.35, 3.9)[:, None] + 0.001 * rng.standard_normal((4, 500))
    idata = az.from_dict(posterior={"forget_max": mode, "E": rng.standard_normal((4, 500)),
                                    "loss_slope": rng.standard_normal((4, 500, 3))})
    lines = fit.worst_mixing(idata, k=2)
    assert lines[0].startswith("forget_max: R-hat") and "chain means 0.35, 3.9, 3.9, 3.9" in lines[0]
    assert not lines[1].startswith("forget_max")
