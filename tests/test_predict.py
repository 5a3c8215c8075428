"""`dynsim predict` on the bundled calibration: output contract, import boundary, one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from dynsim.cli import main

PY = sys.executable


def run_cli(*args):
    return subprocess.run([PY, "-m", "dynsim.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def prediction():
    r = run_cli("predict", "--pretrain", "320BT", "--cpt", "8+42BT", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_json_contract(prediction):
    assert prediction["config"] == "1B-320BT-8+42BT" and prediction["interval"] == 0.9
    rows = prediction["predictions"]
    keys = {"config", "stage", "task", "metric", "units", "mean", "median", "lo", "hi"}
    assert rows and all(set(r) == keys for r in rows)
    for r in rows:
        assert 0 <= r["lo"] <= r["median"] <= r["hi"] <= 100 and r["lo"] <= r["mean"] <= r["hi"]
    stages = {(r["config"], r["stage"]) for r in rows}
    assert stages == {("1B-320BT-8+42BT", "cpt"), ("1B-320BT-8+42BT-100Kep1", "sft"),
                      ("1B-320BT-8+42BT-100Kep1-100Kep8", "rl")}
    tasks = {(r["task"], r["metric"]) for r in rows}
    assert {("ID_avg", "greedy_pass@1"), ("OOD_avg", "maj@16"), ("ID_avg", "pass@16"), ("HellaSwag", "0shot_acc")} <= tasks


def test_extrapolation_is_flagged_with_nearest(prediction):
    assert any("pretraining tokens" in s for s in prediction["outside_calibrated_range"])
    assert prediction["nearest_calibrated"] == "1B-160BT-8+42BT-100Kep1-100Kep8"


def test_pass_at_16_above_greedy_and_rl_helps_in_domain(prediction):
    v = {(r["stage"], r["task"], r["metric"]): r["median"] for r in prediction["predictions"]}
    assert v[("sft", "ID_avg", "pass@16")] > v[("sft", "ID_avg", "greedy_pass@1")]
    assert v[("rl", "ID_avg", "greedy_pass@1")] > v[("sft", "ID_avg", "greedy_pass@1")]


def test_table_and_draws_outputs():
    r = run_cli("predict", "1B-160BT-8+42BT-100Kep1-100Kep8")
    assert r.returncode == 0 and "after SFT+RL" in r.stdout and "90% interval" in r.stdout
    assert "extrapolating" not in r.stdout
    r = run_cli("predict", "--pretrain", "80BT", "--sft", "100Kep1", "--csv")
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and "|ID_avg|pass@16" in lines[0] and len(lines) > 1000


def test_predict_imports_neither_torch_nor_pymc():
    code = ("import sys; from dynsim.cli import main; import contextlib, io\n"
            "with contextlib.redirect_stdout(io.StringIO()): main(['predict', '--pretrain', '320BT', '--cpt', '8+42BT'])\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'pymc', 'pytensor', 'xarray', 'scipy')))")
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_the_verb_table_imports_only_the_verb_typed():
    """`dynsim --help` lists every verb from the table alone; a verb builds its own owner's parser only."""
    code = ("import sys, contextlib, io; from dynsim.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    try: main(['--help'])\n"
            "    except SystemExit: pass\n"
            "print(all(v in out.getvalue() for v in ('predict', 'fit', 'validate', 'train', 'sweep', 'figs')))\n"
            "with contextlib.redirect_stdout(io.StringIO()): main(['predict', '--pretrain', '80BT'])\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('calibrate', 'train_runs', 'paper_figs')))")
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.split() == ["True", "[]"], r.stdout + r.stderr


def _option_actions(parser):
    """Every (command, option action) of a parser and its sub-commands."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from ((f"{name} {c}".strip(), a) for c, a in _option_actions(sub))
        elif action.option_strings:
            yield "", action


def test_a_flag_means_one_thing_in_every_verb():
    """-o/--out: what the verb writes (a file or folder), one option; --runs: a run store; --draws: a count."""
    from dynsim.cli import build_parser

    seen = set()
    for command, action in _option_actions(build_parser()):
        flags = set(action.option_strings)
        seen |= flags
        if flags & {"-o", "--out"}:
            assert flags == {"-o", "--out"}, (command, flags)
        if "--draws" in flags:
            assert action.nargs is None and action.type is not None, command  # a number, not a switch
        if "--runs" in flags:
            assert "run store" in action.help, command
    assert {"-o", "--out", "--runs", "--draws", "--csv"} <= seen
    assert "--output" not in seen


@pytest.mark.parametrize("verb, missing, extra", [
    (["results", "import", "runs.csv", "-o", "r.nc"], "xarray", "data"),
    (["fit", "--calibration", "evolm", "-o", "p.npz"], "pymc", "fit"),
    (["train", "0.1M-1MT"], "torch", "train"),
])
def test_a_verb_whose_extra_is_missing_names_the_extra(tmp_path, verb, missing, extra):
    """A light install (`pip install dynsim`: numpy alone) runs predict; any other verb says, in one line and with
    exit 2, which extra it needs (here the module is hidden from the interpreter)."""
    code = (f"import sys; sys.modules[{missing!r}] = None\n"
            f"from dynsim.cli import main; sys.exit(main({verb!r}))")
    (tmp_path / "runs.csv").write_text("config,task,metric,value\n")
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"needs {missing}" in r.stderr and f"pip install 'dynsim[{extra}]'" in r.stderr, r.stderr


@pytest.mark.slow
def test_a_light_install_predicts_without_torch_jax_or_pymc(tmp_path):
    """`pip install .` with no extras: numpy alone, and the README's main command prints its predictions."""
    import shutil

    root, src = Path(__file__).resolve().parents[1], tmp_path / "src"  # a copy: a build writes into its source
    shutil.copytree(root, src, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "runs",
                                                             "figures", "tests", "bench", "studies"))
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "v")], check=True, timeout=300)
    py = tmp_path / "v" / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", str(src)], check=True, timeout=600, cwd=tmp_path)
    listed = subprocess.run([py, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True).stdout
    installed = {line.split("==")[0].lower() for line in listed.splitlines()}
    assert not installed & {"torch", "jax", "jaxlib", "pymc", "pytensor", "xarray", "matplotlib"}, installed
    r = subprocess.run([tmp_path / "v" / "bin" / "dynsim", "predict", "--pretrain", "320BT", "--cpt", "8+42BT"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0 and "ID_avg" in r.stdout and r.stderr == "", r.stderr


@pytest.mark.parametrize("args, needle", [
    (["predict", "--pretrain", "320XT"], "320XT"),
    (["predict", "--pretrain=-5BT"], "-5BT"),
    (["predict", "1B--5BT"], "pretraining tokens"),
    (["predict", "--pretrain", "160BT", "--cpt", "8+BT"], "8+BT"),
    (["predict", "--pretrain", "160BT", "--rl", "100Kep8"], "RL without SFT"),
    (["predict", "abc"], "abc"),
    (["predict"], "--pretrain"),
    (["predict", "--pretrain", "160BT", "--posterior", "/nonexistent.npz"], "no such posterior"),
    (["predict", "--pretrain", "160BT", "--calibration", "nope"], "unknown calibration"),
    (["predict", "--pretrain", "160BT", "--interval", "120"], "--interval"),
    (["predict", "--bogus"], "unrecognized"),
    (["predict", "--pretrain", "160BT", "--corpus", "rpj"], "one pretraining corpus"),
    (["validate", "--split", "sideways"], "invalid choice"),
    (["fit", "--hold-out-size-from", "1e3"], "holds out every run"),
    (["fit", "--min-tokens-per-param", "1e6"], "leaves no run to fit"),
])
def test_user_errors_are_one_line_exit_2(args, needle, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_unreadable_posterior(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    assert main(["predict", "--pretrain", "160BT", "--posterior", str(bad)]) == 2
    assert "not a readable dynsim posterior" in capsys.readouterr().err


@pytest.mark.parametrize("diagnostics", [{"rhat_max": 1.2, "divergences": 3}, {"rhat_max": float("nan")},
                                         {"divergences": "0"}])
def test_failed_diagnostics_refused_unless_forced(tmp_path, capsys, diagnostics):
    import numpy as np
    from dynsim import posterior
    src = np.load(posterior.bundled_path("evolm"))
    meta = json.loads(str(src["meta"]))
    meta["diagnostics"] |= diagnostics  # NaN: a one-chain fit's R-hat
    meta.pop(posterior.CHECKSUM, None)  # a file written without one: its diagnostics are what is tested
    path = tmp_path / "bad_diag.npz"
    np.savez(path, **{k: src[k] for k in src.files if k != "meta"}, meta=np.array(json.dumps(meta)))
    assert main(["predict", "--pretrain", "160BT", "--posterior", str(path)]) == 2
    assert "diagnostics" in capsys.readouterr().err
    assert main(["predict", "--pretrain", "160BT", "--posterior", str(path), "--force"]) == 0


def test_a_non_finite_draw_is_refused(tmp_path, capsys):
    import numpy as np
    from dynsim import posterior
    src = np.load(posterior.bundled_path("evolm"))
    params = {k: src[k].copy() for k in src.files}
    params["param/E"][17] = np.nan  # one draw of 4000 made every prediction NaN
    meta = json.loads(str(params["meta"]))
    meta.pop(posterior.CHECKSUM, None)  # a file written without one: the draw is what is tested
    params["meta"] = np.array(json.dumps(meta))
    path = tmp_path / "nan_draw.npz"
    np.savez(path, **params)
    assert main(["predict", "--pretrain", "160BT", "--posterior", str(path), "--force"]) == 2
    err = capsys.readouterr().err
    assert "non-finite draws in E" in err and len(err.strip().splitlines()) == 1


def test_mini_calibration_predicts_from_the_repository(capsys):
    """The miniature study's posterior (studies/mini_evolm/) answers like a bundled one: upstream loss and cloze
    accuracy, then downstream after the study's usual SFT (5Kep3) and RL (256ep1)."""
    from dynsim import posterior
    post = posterior.load(posterior.bundled_path("mini"))
    assert post.diagnostic_problems() == [] and post.meta["held_out"]["configs"]
    assert main(["predict", "--calibration", "mini", "--size", "0.1M", "--pretrain", "8MT", "--cpt", "0.4+1.6MT"]) == 0
    out = capsys.readouterr().out
    assert "0.1M-8MT-0.4+1.6MT-5Kep3-256ep1  (after SFT+RL)" in out
    rows = {tuple(line.split()[:2]): float(line.split()[2]) for line in out.splitlines() if line.startswith("  ")
            and len(line.split()) >= 3 and line.split()[0] != "task"}
    assert 2.0 < rows[("general_text", "loss")] < 5.0 and ("domain_text", "loss") not in rows
    assert 0 <= rows[("arith", "greedy_pass@1")] <= 100


def test_a_runs_deviation_from_the_loss_law_moves_its_loss_and_its_cloze_numbers_together():
    """Measured-loss calibrations (Gadre et al.'s): one deviation per run, in its loss and, through the link,
    against its accuracies; another run's draws are independent of it; each number's spread is the likelihood's."""
    import numpy as np

    from dynsim import observation, posterior
    from dynsim.config import parse_config

    post = posterior.load(posterior.bundled_path("gadre2024"))
    a, b = parse_config("0.4B-8BT"), parse_config("0.1B-20BT")
    configs, tasks, metrics = [a, a, b], ["c4_val", "avg46", "avg46"], ["loss", "acc", "acc"]
    noisy = post.predict(configs, tasks, metrics, rng=np.random.default_rng(1)).astype(float)
    mean = post.predict(configs, tasks, metrics, noise=False).astype(float)
    dev = noisy - mean
    same_run, other_run = np.corrcoef(dev[:, 0], dev[:, 1])[0, 1], np.corrcoef(dev[:, 0], dev[:, 2])[0, 1]
    assert same_run < -0.2 and abs(other_run) < 0.08
    x = post.design(configs, tasks, metrics)
    sd = post.noise_sd(post.groups(configs, tasks, metrics), mean, loss_slope=post.loss_slope(x),
                       run_groups=observation.loss_group(configs))
    np.testing.assert_allclose(dev[:, 1:].std(axis=0), np.sqrt((sd[:, 1:] ** 2).mean(axis=0)), rtol=0.06)


def test_a_runs_shared_deviation_moves_all_its_numbers_of_a_group_together():
    """run_shared (observation.py): one draw per (run, group), so a run's average over tasks keeps it whole while
    another run's numbers stay independent, and each number's spread gains it in quadrature."""
    import numpy as np

    from dynsim import posterior
    from dynsim.config import parse_config

    post = posterior.load(posterior.bundled_path("olmo_ladder"))
    tau = 3.0
    shared = posterior.Posterior(post.params | {"run_shared": np.tile([tau, 0.0, 0.0], (post.n_draws, 1))}, post.meta)
    tasks = [t for t in post.table.upstream][:8]
    a, b = parse_config("1B-20BT"), parse_config("0.3B-6BT")
    configs = [a] * len(tasks) + [b] * len(tasks)
    args = (configs, tasks * 2, ["acc"] * len(configs))
    dev = {}
    for name, p in (("without", post), ("with", shared)):
        dev[name] = (p.predict(*args, rng=np.random.default_rng(3)).astype(float)
                     - p.predict(*args, noise=False).astype(float))
    n = len(tasks)
    run_a, run_b = dev["with"][:, :n].mean(axis=1), dev["with"][:, n:].mean(axis=1)
    assert abs(np.corrcoef(run_a, run_b)[0, 1]) < 0.08
    extra = run_a.var() - dev["without"][:, :n].mean(axis=1).var()
    assert extra == pytest.approx(tau ** 2, rel=0.15)  # the average carries the shared part whole
    single = dev["with"][:, 0].var() - dev["without"][:, 0].var()
    assert single == pytest.approx(tau ** 2, rel=0.2)


EVOLM_ROWS = [(c, t, m) for c in ("1B-80BT", "4B-160BT-8+42BT", "1B-160BT-100Kep1", "4B-80BT-8+42BT-100Kep1-100Kep8")
              for t, m in (("ARC-Challenge", "0shot_acc"), ("ARC-Easy", "0shot_acc"), ("HellaSwag", "0shot_acc"),
                           ("OBQA", "0shot_acc"), ("PIQA", "0shot_acc"), ("Winogrande", "0shot_acc"),
                           ("Upstream_avg", "0shot_acc"), ("ID_avg", "greedy_pass@1"), ("MATH-Level2", "maj@16"),
                           ("OOD_avg", "pass@16"))]


@pytest.fixture(scope="module")
def evolm_posterior():
    from dynsim import posterior

    return posterior.load(posterior.bundled_path("evolm"))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(EVOLM_ROWS), min_size=1, max_size=12))
def test_any_mix_of_rows_gets_what_each_row_gets_alone(evolm_posterior, rows):
    """A request's per-row arrays are never confused with the calibration's per-task tables, whatever the number
    of rows (EvoLM has six upstream tasks: six rows once read OBQA's link for a downstream row's)."""
    import numpy as np

    from dynsim.config import parse_config

    cfgs, tasks, metrics = [parse_config(c) for c, _, _ in rows], [t for _, t, _ in rows], [m for _, _, m in rows]
    together = evolm_posterior.predict(cfgs, tasks, metrics, noise=False)
    alone = np.concatenate([evolm_posterior.predict([c], [t], [m], noise=False) for c, t, m in zip(cfgs, tasks, metrics)],
                           axis=1)
    np.testing.assert_allclose(together, alone, atol=1e-3)  # percent; float32


def test_five_cloze_rows_and_one_downstream_row_keep_each_tasks_link(evolm_posterior):
    from dynsim.config import parse_config

    base, post = parse_config("1B-160BT"), parse_config("1B-160BT-100Kep1")
    tasks = ["ID_avg", "ARC-Challenge", "ARC-Easy", "HellaSwag", "OBQA", "PIQA"]  # as many rows as upstream tasks
    together = evolm_posterior.predict([post] + [base] * 5, tasks, ["greedy_pass@1"] + ["0shot_acc"] * 5, noise=False)
    obqa = evolm_posterior.predict([base], ["OBQA"], ["0shot_acc"], noise=False)
    assert abs(float(together[:, 4].mean()) - float(obqa.mean())) < 1e-3  # was 57.0 for 38.0: PIQA's chance


def test_predict_prints_nothing_on_stderr():
    r = run_cli("predict", "--pretrain", "320BT", "--cpt", "8+42BT")
    assert r.returncode == 0 and r.stderr == ""



@pytest.mark.parametrize("calibration, config, task", [("gadre2024", "0.01B-0.2BT", "c4_val"),
                                                       ("gadre2024", "7B-1TT", "c4_val"),
                                                       ("mini", "0.1M-0.5MT-5Kep3", "general_text")])
def test_predicted_losses_are_positive(calibration, config, task):
    """A loss is positive by construction: its predictive noise is relative (multiplicative), even for a tiny run
    and far outside the calibrated range, where an additive draw went below zero."""
    import numpy as np

    from dynsim import posterior
    from dynsim.config import parse_config

    draws = posterior.load(posterior.bundled_path(calibration)).predict([parse_config(config)], [task], ["loss"], rng=np.random.default_rng(0))
    assert np.isfinite(draws).all() and (draws > 0).all()


def test_a_base_checkpoints_quality_is_inherited_by_its_descendants():
    """base_quality (forward.pretrain_loss, forward.ability_shift): a checkpoint the fit saw keeps its quality, so
    a better one predicts higher cloze and downstream numbers for all of its descendants; a checkpoint the fit never
    saw draws one quality per draw, shared by its own numbers and its descendants' (they move together), and
    independent of another new checkpoint's."""
    import numpy as np

    from dynsim import forward, posterior
    from dynsim.config import parse_config

    post = posterior.load(posterior.bundled_path("evolm"))
    S = post.n_draws
    seen = [forward.base_key(parse_config(n)) for n in ("1B-80BT", "1B-160BT")]
    quality = np.tile([-1.5, 1.5], (S, 1))  # 1B-80BT worse than its law, 1B-160BT better
    params = post.params | {"base_quality": quality, "quality_loss": np.full(S, 0.03),
                            "quality_ability": np.tile([0.6, 0.6], (S, 1))}
    with_quality = posterior.Posterior(params, post.meta | {"bases": seen})
    rows = [("1B-80BT", "HellaSwag", "0shot_acc"), ("1B-80BT-8+42BT-100Kep1", "ID_avg", "greedy_pass@1"),
            ("1B-160BT", "HellaSwag", "0shot_acc"), ("1B-160BT-8+42BT-100Kep1", "ID_avg", "greedy_pass@1")]
    args = ([parse_config(c) for c, _, _ in rows], [t for _, t, _ in rows], [m for _, _, m in rows])
    before = post.predict(*args, noise=False).mean(axis=0)
    after = with_quality.predict(*args, noise=False).mean(axis=0)
    assert after[0] < before[0] - 1 and after[1] < before[1] - 0.5  # the worse checkpoint and its SFT run
    assert after[2] > before[2] + 1 and after[3] > before[3] + 0.5  # the better one and its SFT run

    new = [("4B-80BT", "HellaSwag", "0shot_acc"), ("4B-80BT-8+42BT-100Kep1", "ID_avg", "greedy_pass@1"),
           ("4B-160BT", "HellaSwag", "0shot_acc"), ("4B-160BT-8+42BT-100Kep1", "ID_avg", "greedy_pass@1")]
    args = ([parse_config(c) for c, _, _ in new], [t for _, t, _ in new], [m for _, _, m in new])
    d = with_quality.predict(*args, noise=False, rng=np.random.default_rng(5)).astype(float)
    same = np.corrcoef(d[:, 0], d[:, 1])[0, 1]
    assert same > 0.5  # a new checkpoint's cloze and its SFT run's numbers share its quality
    assert abs(np.corrcoef(d[:, 0], d[:, 3])[0, 1]) < same - 0.3  # another checkpoint's do not
    wider = d.std(axis=0) > post.predict(*args, noise=False).astype(float).std(axis=0)
    assert wider.all()  # an unseen checkpoint's quality is uncertainty


def test_the_cli_knows_every_module_the_extras_install():
    """dynsim.cli.OPTIONAL (the modules whose absence names an extra) is pyproject.toml's extras, package for
    package: a dependency added to an extra and not here would show a traceback in a light install."""
    import re
    import tomllib

    from dynsim.cli import OPTIONAL, VERBS

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    packages = {re.split(r"[=<>\[]", r)[0] for name in ("data", "fit", "train", "figs") for r in extras[name]}
    assert packages - {"dynsim"} == OPTIONAL
    assert {extra for _, extra, _ in VERBS.values()} - {""} <= set(extras)
    assert [re.split(r"[=<>]", r)[0] for r in project["dependencies"]] == ["numpy"]


def test_predict_reports_after_the_post_training_stages_each_calibration_has_runs_of():
    """EvoLM has SFT and RL runs: a base model is reported after its usual SFT and after SFT+RL. Amuro & Char
    fine-tune only: no RL number is made up from the prior alone, and a run given with an RL stage is refused."""
    from dynsim import posterior

    for calibration, stages in (("evolm", ["sft", "rl"]), ("amuro_char", ["sft"])):
        post = posterior.load(posterior.bundled_path(calibration))
        base = post.observed[0].upstream()
        reported = dict.fromkeys(c.stage() for c, _, _ in post.default_outputs(base))
        assert [s for s in reported if s != "pt"] == stages
    assert post.unseen_stages(base.with_stage("sft", (1000, 1)).with_stage("rl", (1000, 1))) == ["RL"]
