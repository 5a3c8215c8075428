"""Paper figures (issue 7): every figure script on a small Dataset simulated from the bundled posterior, the index,
and the `dynsim figs` command's errors."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
from PIL import Image

import paper_figs
from dynsim import calibrations, cli, posterior, results
from dynsim.config import parse_config
from paper_figs.common import thinned

# What each figure must show: per panel, substrings of the x label and the y label, and the x scale.
EXPECTED = {
    "fig2": ("pretraining tokens", "upstream accuracy", "log"),
    "fig3": ("pretraining tokens", "accuracy", "log"),
    "fig4": ("CPT domain tokens", "", "log"),
    "fig5": ("CPT domain tokens", "accuracy", "log"),
    "fig6": ("SFT epochs", "accuracy", "log"),
    "fig7": ("SFT examples", "accuracy", "log"),
    "fig8": ("RL e", "accuracy after SFT+RL", "log"),
    "forgetting": ("tokens", "mean ratio of change", "log"),
    "overtraining": ("tokens per parameter", "accuracy", "log"),
    "scaling": ("pretraining tokens seen", "", "log"),
    "finetuning": ("pretraining tokens", "(%)", "log"),
}
SIM_CONFIGS = ["1B-20BT", "1B-80BT", "1B-160BT", "4B-80BT", "1B-160BT-8+42BT", "1B-160BT-0+50BT",
               "1B-80BT-8+42BT-100Kep1", "1B-160BT-8+42BT-100Kep1", "1B-160BT-8+42BT-100Kep1-100Kep8",
               "1B-160BT-8+42BT-100Kep4", "1B-160BT-8+42BT-100Kep1-100Kep2", "4B-80BT-8+42BT-100Kep1-100Kep8"]


@pytest.fixture(scope="module")
def post():
    return thinned(posterior.load(posterior.bundled_path("evolm")), 48)  # few draws: the test is about drawing


def simulate(post, names, seed=0) -> "results.xr.Dataset":
    """A results Dataset drawn from the forward model at one posterior draw, with measurement noise."""
    tasks = results.read_tasks_csv(str(resources.files("dynsim") / "data" / "evolm" / "tasks.csv"))
    rows, obs = [], []
    for name in names:
        cfg = parse_config(name)
        if cfg.has_sft:
            obs += [(cfg, t, m) for t in ("ID_avg", "OOD_avg") for m in ("greedy_pass@1", "maj@16", "pass@16")]
        else:
            obs += [(cfg, t, "0shot_acc") for t in post.table.upstream + ["Upstream_avg"]]
    draws = post.predict(*map(list, zip(*obs)), rng=np.random.default_rng(seed))
    for (cfg, t, m), v in zip(obs, draws[seed % len(draws)]):
        rows.append(dict(config=cfg, task=t, metric=m, seed=0, value=float(v)))
    return results.from_rows(rows, tasks, {"title": "simulated test data"})


@pytest.fixture(scope="module")
def drawn(post, tmp_path_factory):
    ds = simulate(post, SIM_CONFIGS)
    out = tmp_path_factory.mktemp("figs")
    records = paper_figs.run(ds, post, out, command="dynsim figs --data sim.nc --posterior p.npz --out figs")
    return ds, out, {r.name: r for r in records}


def test_every_figure_is_drawn_with_its_titles_and_labels(drawn):
    ds, out, records = drawn
    assert set(records) == set(paper_figs.FIGURES)
    for name, (xlabel, ylabel, xscale) in EXPECTED.items():
        r = records[name]
        assert [p.name for p in r.files] == [f"{name}.png", f"{name}.pdf"]
        png, pdf = r.files
        assert png.stat().st_size > 10_000 and pdf.read_bytes()[:5] == b"%PDF-"
        with Image.open(png) as im:  # the saved file carries the figure's title
            assert im.info.get("Title") == r.title
            assert im.size[0] > 800 and im.size[1] > 400
        assert r.title and r.panels, name
        for p in r.panels:
            assert p["title"], name
            assert xlabel in p["xlabel"] and "log" in p["xlabel"], (name, p)
            assert ylabel in p["ylabel"] and ("(%)" in p["ylabel"] or "nats/token" in p["ylabel"]), (name, p)
            assert p["xscale"] == xscale, (name, p)
        assert "90%" in r.caption and "posterior-predictive median" in r.caption
    assert not [f for f in out.iterdir() if f.name.startswith(".")]  # no temporary files left behind


def test_observed_points_are_drawn_where_the_data_has_them(drawn):
    ds, out, records = drawn
    assert records["fig2"].n_observed == 4 * 7  # four base models × (6 tasks + average)
    assert records["fig3"].n_observed > 0 and records["fig6"].n_observed > 0 and records["fig8"].n_observed > 0
    assert records["forgetting"].n_observed == 4  # two CPT models whose parent was measured, in both panels
    assert "observed values from 'simulated test data'" in records["fig3"].caption


def test_index_lists_every_figure_with_provenance(drawn):
    ds, out, records = drawn
    text = (out / "figures.md").read_text()
    for name, r in records.items():
        assert f"## {name}: {r.title}" in text
        assert r.caption in text
        assert f"--only {name}" in text
    assert ds.attrs["data_hash"] in text and post_hash() in text
    entries = json.loads((out / "figures.json").read_text())
    assert list(entries) == list(paper_figs.FIGURES)


def post_hash():
    return posterior.load(posterior.bundled_path("evolm")).meta["data_hash"]


def test_a_dataset_without_data_for_a_figure_shows_the_prediction_alone(post, tmp_path):
    ds = simulate(post, ["1B-20BT", "1B-160BT"])  # pretraining only: nothing downstream
    r = paper_figs.module("overtraining").make(ds, post, tmp_path)
    assert r.n_observed == 0 and "prediction alone" in r.caption
    assert all(p.exists() for p in r.files)


def test_a_calibration_with_measured_losses_draws_its_figures(tmp_path):
    """The miniature study's posterior measures losses, so its predictive draws a run's deviation from the loss
    law (Student-t, through the figures' shared-noise rng): the figures of its loss and cloze panels draw."""
    mini = thinned(posterior.load(posterior.bundled_path("mini")), 48)
    ds = calibrations.get("mini").dataset()
    for name in ("fig4", "forgetting"):
        r = paper_figs.module(name).make(ds, mini, tmp_path)
        assert r.n_observed > 0 and all(p.exists() for p in r.files)


def test_a_testbed_of_base_models_draws_its_scaling_figure_with_the_held_out_runs(tmp_path):
    """The OLMo ladder holds base models only: its default figure set is the scaling figure, where every run's
    final checkpoint is a point (the 3.2B runs the fit held out among them) on its size's curve."""
    cal = calibrations.get("olmo_ladder")
    ds = cal.dataset()
    assert paper_figs.select(None, ds) == ["scaling"]
    ladder = thinned(posterior.load(cal.posterior_path), 48)
    r = paper_figs.module("scaling").make(ds, ladder, tmp_path)
    modelled = np.isin(ds.metric.values, ["acc", "loss"])  # not the ladder's bits per byte
    assert r.n_observed == sum(int(((ds.task.values == p["title"]) & modelled).sum()) for p in r.panels)
    assert r.panels[0]["ylabel"].startswith("loss") and "held out size >= 3e+09" in r.caption
    assert all(p.exists() for p in r.files)


def test_cli_draws_one_figure_from_a_data_file_and_posterior(post, drawn, tmp_path, capsys):
    ds, _, _ = drawn
    data = results.save(ds, tmp_path / "sim.nc")
    p = tmp_path / "post.npz"
    meta = post.meta | {"data_hash": ds.attrs["data_hash"]}  # as if fitted to it: figs refuses another's posterior
    meta.pop(posterior.CHECKSUM, None)
    np.savez(p, meta=json.dumps(meta), **{f"param/{k}": v for k, v in post.params.items()})
    out = tmp_path / "figs"
    assert cli.main(["figs", "--data", str(data), "--posterior", str(p), "--only", "forgetting", "--out", str(out)]) == 0
    assert sorted(f.name for f in out.iterdir()) == ["figures.json", "figures.md", "forgetting.pdf", "forgetting.png"]
    text = (out / "figures.md").read_text()
    assert f"dynsim figs --data {data} --posterior {p} --out {out} --only forgetting" in text
    assert f"posterior: `{p}`" in text and ds.attrs["data_hash"] in text


@pytest.mark.parametrize("argv, message", [
    (["--calibration", "nope"], "unknown calibration 'nope'"),
    (["--only", "fig99"], "unknown figure 'fig99'"),
    (["--only", "fig2,fig1"], "unknown figure 'fig1'"),
    (["--data", "/no/such.nc", "--posterior", "/no/such.npz"], "no such"),
    (["--data", "/no/such.nc"], "--data needs --posterior"),
    (["--posterior", "/no/such.npz"], "no such posterior file"),
])
def test_cli_errors_are_one_line_exit_2(argv, message, tmp_path, capsys):
    out = tmp_path / "figs"
    assert cli.main(["figs", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dynsim: error:") and message in err, err
    assert "Traceback" not in err
    assert not out.exists()  # nothing written on bad input


def test_a_testbed_of_named_fine_tuning_draws_its_fine_tuning_figure(tmp_path):
    """Amuro & Char fine-tune each checkpoint on named data sets: its default figure is the fine-tuning one, where
    every number of the Dataset is a point (the held-out step-592k runs among them) on its data set's curve."""
    cal = calibrations.get("amuro_char")
    ds = cal.dataset()
    assert paper_figs.select(None, ds) == ["finetuning"]
    assert "finetuning" not in paper_figs.select(None, calibrations.get("evolm").dataset())
    r = paper_figs.module("finetuning").make(ds, thinned(posterior.load(cal.posterior_path), 48), tmp_path)
    shown = np.isin(ds.task.values, [p["title"] for p in r.panels])
    assert r.n_observed == int(shown.sum()) and "held out post-trained runs" in r.caption
    assert all(p.exists() for p in r.files)
