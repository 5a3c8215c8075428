"""Damaged and edited artefacts (issue 19): copies of the bundled posterior, results Dataset and a result record,
truncated, byte-flipped, emptied, given NaN/Inf draws, edited metadata (a wrong type, a missing key, a wrong
shape), a wrong data hash, values out of their metric's range, or swapped for a PNG. Each is refused when read:
exit 2, exactly one stderr line "dynsim: error: ...", no traceback, no file left behind. Nothing here samples,
trains or draws (the verbs' work is replaced by a failure); about 10 s."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from dynsim import calibrations, posterior, results
from dynsim.cli import main

REPO = Path(__file__).resolve().parent.parent
POSTERIOR = posterior.bundled_path("evolm")
MINI_POSTERIOR = posterior.bundled_path("mini")
MINI_RESULTS = REPO / "studies" / "mini_evolm" / "results.nc"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\xff\xfe"
RECORD = {"schema": "dynsim.result/1", "config": "0.1M-1MT", "seed": 0,
          "metrics": [{"task": "arith", "metric": "greedy_pass@1", "value": 50.0, "n_items": 10, "n_correct": 5},
                      {"task": "general_text", "metric": "loss", "value": 5.2}],
          "tasks": {"arith": {"kind": "ID", "chance": 0, "n_items": 10}, "general_text": {"kind": "text"}}}


# -- how each damaged posterior is made from the bundled one ------------------------------------------
def _meta(**changes):
    """An edit of the metadata: key=value sets (a dotted key as a__b), key=... deletes."""
    def edit(params, meta):
        for key, value in changes.items():
            *parents, last = key.split("__")
            table = meta
            for p in parents:
                table = table[p]
            if value is ...:
                del table[last]
            else:
                table[last] = value
    return edit


def _param(name, change):
    def edit(params, meta):
        if change is ...:
            del params[name]
        else:
            params[name] = change(params[name].copy())
    return edit


def _put(a, where, value):
    a[where] = value
    return a


def _all(change):
    def edit(params, meta):
        for k in params:
            params[k] = change(params[k])
    return edit


def _checksummed(edit=None):
    """The bundled posterior as `dynsim fit` now writes it (with its checksum), then edited without updating it."""
    def make(params, meta):
        meta[posterior.CHECKSUM] = posterior.content_checksum(params, meta)
        if edit:
            edit(params, meta)
    return make


POSTERIOR_EDITS = {  # name: (edit of (params, meta), the words of the refusal)
    # the checksum: any edit of a file that has one
    "edited_draw": (_checksummed(_param("E", lambda a: _put(a, 17, a[17] * 1.01))), "no longer match its checksum"),
    "edited_meta": (_checksummed(_meta(data_hash="0123456789abcdef")), "no longer match its checksum"),
    "edited_diagnostics": (_checksummed(_meta(diagnostics__rhat_max=1.0)), "no longer match its checksum"),
    "checksum_number": (_checksummed(_meta(checksum=5)), "no longer match its checksum"),
    "dropped_param": (_checksummed(_param("up_mid", ...)), "no longer match its checksum"),
    # draws
    "nan_draw": (_param("E", lambda a: _put(a, 17, np.nan)), "non-finite draws in E"),
    "inf_draw": (_param("alpha", lambda a: _put(a, 3, np.inf)), "non-finite draws in alpha"),
    "minus_inf_draw": (_param("ability0", lambda a: _put(a, (5, 2), -np.inf)), "non-finite draws in ability0"),
    "text_draws": (_param("beta", lambda a: a.astype(str)), "non-finite draws in beta"),
    "boolean_draws": (_param("beta", lambda a: a > 0), "non-finite draws in beta"),
    "missing_param": (_param("E", ...), "lacks parameters E"),
    "wrong_shape": (_param("ability0", lambda a: a[:, :3]), "parameter ability0 has shape (4000, 3)"),
    "extra_column": (_param("E", lambda a: a[:, None]), "parameter E has shape (4000, 1)"),
    "short_param": (_param("beta", lambda a: a[:-1]), "different or no numbers of draws"),
    "no_draws": (_all(lambda a: a[:0]), "different or no numbers of draws"),
    # the diagnostics (refused without --force, saying why)
    "rhat_nan": (_meta(diagnostics__rhat_max=float("nan")), "R-hat nan > 1.01"),
    "rhat_missing": (_meta(diagnostics__rhat_max=...), "R-hat not recorded"),
    "rhat_text": (_meta(diagnostics__rhat_max="1.0"), "R-hat not recorded"),
    "divergences_text": (_meta(diagnostics__divergences="0"), "'0' divergent transitions"),
    "ess_nan": (_meta(diagnostics__ess_bulk_min=float("nan")), "ESS bulk not recorded"),
    "ess_few": (_meta(diagnostics__ess_tail_min=3.0), "ESS tail 3 < 100"),
    "no_diagnostics": (_meta(diagnostics=...), "diagnostics not recorded"),
    "diagnostics_list": (_meta(diagnostics=[1.0, 0]), "diagnostics not recorded"),
    # the metadata: a wrong type, a missing key, a value that does not parse
    "schema_missing": (_meta(schema=...), "not a dynsim.posterior/2 file"),
    "schema_older": (_meta(schema="dynsim.posterior/1"), "written by an older dynsim"),
    "tasks_missing": (_meta(tasks=...), "'tasks' must be a table"),
    "task_names_number": (_meta(tasks__names=7), "'tasks.names' must be a non-empty list"),
    "task_kind_unknown": (_meta(tasks__kinds=["upstream"] * 11 + ["sideways"]), "unknown task kind(s) 'sideways'"),
    "task_lengths": (_meta(tasks__chance=["25"]), "must be of one length"),
    "task_chance_text": (_meta(tasks__chance=["abc"] * 12), "'tasks.chance' 'abc' is not a chance accuracy"),
    "observed_missing": (_meta(observed=...), "'observed' must hold lists"),
    "observed_bad_run": (_meta(observed__configs=["1B-lots"]), "bad pretraining tokens"),
    "noise_floor_text": (_meta(noise_floor="0.3"), "'noise_floor' must be a positive number"),
    "loss_nu_negative": (_meta(loss_nu=-4), "'loss_nu' must be a positive number"),
    "form_unknown": (_meta(form="cubic"), "unknown form 'cubic'"),
    "scales_text": (_meta(scales="big"), "'scales' must be a table"),
    "corpora_number": (_meta(corpora=3), "'corpora' must be a list"),
    # a fresh probe (probe19): values of the right type that cannot be right
    "complex_draws": (_param("E", lambda a: a.astype(complex)), "non-finite draws in E"),
    "huge_draw": (_param("alpha", lambda a: _put(a, 3, 1e300)), "gives non-finite predictions"),
    "one_draw": (_all(lambda a: a[:1]), "or a single one"),
    "task_named_twice": (_meta(tasks__names=["ARC-Easy"] * 12), "'tasks.names' names a task twice"),
    "chance_nan": (_meta(tasks__chance=["nan"] * 12), "'tasks.chance' 'nan' is not a chance accuracy"),
    "chance_150": (_meta(tasks__chance=["150"] * 12), "'tasks.chance' '150' is not a chance accuracy"),
    "rhat_negative": (_meta(diagnostics__rhat_max=-1.0), "R-hat -1.0 < 0.9"),
    "ess_inf": (_meta(diagnostics__ess_bulk_min=float("inf")), "ESS bulk inf is not a finite number"),
    "noise_floor_huge": (_meta(noise_floor=10 ** 400), "'noise_floor' must be a positive number"),
    "loss_nu_nan": (_meta(loss_nu=float("nan")), "'loss_nu' must be a positive number"),
    "observed_metric": (_meta(observed__metrics=["acc\n"]), "'observed.metrics': unknown metric"),
    "corpora_twice": (_meta(corpora=["c4", "c4"]), "'corpora' must be a list of distinct strings"),
    "held_out_run": (_meta(held_out={"rule": "x", "configs": ["abc"]}), "'held_out.configs': bad run name 'abc'"),
    "held_out_rule": (_meta(held_out={"configs": ["1B-160BT"]}), "'held_out' must be a table with a 'rule'"),
    "excluded_rule": (_meta(excluded={"configs": ["1B-160BT"]}), "'excluded' must be a table with a 'rule'"),
    "schema_number": (_meta(schema=2), "not a dynsim.posterior/2 file"),
}


def _write_posterior(path: Path, edit) -> None:
    with np.load(POSTERIOR) as f:
        meta = json.loads(str(f["meta"]))
        params = {k.removeprefix("param/"): f[k] for k in f.files if k.startswith("param/")}
    meta.pop(posterior.CHECKSUM, None)  # a file without one, unless the case adds it (_checksummed)
    edit(params, meta)
    np.savez(path, **{f"param/{k}": v for k, v in params.items()}, meta=np.array(json.dumps(meta)))


def _flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


# -- how each damaged results Dataset is made from the mini study's ---------------------------------
def _value(i, v, rehash):
    def edit(ds):
        values = ds["value"].values.copy()
        values[i] = v
        ds["value"] = ("obs", values)
        if rehash:  # an edit that also recomputed the hash: the range check must catch it
            ds.attrs["data_hash"] = results.data_hash(ds)
    return edit


def _first(metric):
    ds = results.load(MINI_RESULTS)
    return int(np.flatnonzero(ds["metric"].values == metric)[0])


def _attrs(**changes):
    def edit(ds):
        for k, v in changes.items():
            if v is ...:
                del ds.attrs[k]
            else:
                ds.attrs[k] = v
    return edit


def _table(name, value, rehash):
    """The first entry of a task or metric table set to value; rehash: the tables hash recomputed as well."""
    def edit(ds):
        values = ds[name].values.copy()
        values[0] = value
        ds = ds.assign_coords({name: (ds[name].dims, values)})
        if rehash:
            ds.attrs["tables_hash"] = results.tables_hash(ds)
        return ds
    return edit


def _rehashed(edit):
    def both(ds):
        ds = edit(ds) or ds
        ds.attrs["data_hash"] = results.data_hash(ds)
        return ds
    return both


def _drop_task_kind(ds):
    return ds.drop_vars("task_kind")


DATASET_EDITS = {  # name: (edit of the loaded Dataset, the words of the refusal)
    "accuracy_250_old_hash": (lambda: _value(_first("greedy_pass@1"), 250.0, False), "no longer match their data hash"),
    "accuracy_250": (lambda: _value(_first("greedy_pass@1"), 250.0, True), "greedy_pass@1 250: an accuracy"),
    "accuracy_negative": (lambda: _value(_first("0shot_acc"), -3.0, True), "0shot_acc -3: an accuracy"),
    "loss_negative": (lambda: _value(_first("loss"), -1.0, True), "loss -1: a loss must be positive"),
    "value_nan": (lambda: _value(0, np.nan, True), "nan: "),
    "value_inf": (lambda: _value(0, np.inf, True), "inf: "),
    "no_data_hash": (lambda: _attrs(data_hash=...), "it has no data hash"),
    "wrong_data_hash": (lambda: _attrs(data_hash="0123456789abcdef"), "no longer match their data hash 0123456789abcdef"),
    "no_task_kind": (lambda: _drop_task_kind, "no 'task_kind' table"),
    # a fresh probe (probe19): the task and metric tables, which the data hash leaves out, have a hash of their own
    "task_kind_edited": (lambda: _table("task_kind", "OOD", False), "tables (task_kind, task_chance, ...) no longer"),
    "task_chance_edited": (lambda: _table("task_chance", "99", False), "no longer match their hash"),
    "metric_units_edited": (lambda: _table("metric_units", "bananas", False), "no longer match their hash"),
    "task_n_items_edited": (lambda: _table("task_n_items", "1", False), "no longer match their hash"),
    "task_kind_unknown": (lambda: _table("task_kind", "sideways", True), "has an unknown kind 'sideways'"),
    "task_chance_nan": (lambda: _table("task_chance", "nan", True), "has chance 'nan'"),
    "n_benchmarks_zero": (lambda: _table("task_n_benchmarks", 0, True), "fewer than 1 benchmark"),
    "no_observations": (lambda: _rehashed(lambda ds: ds.isel(obs=slice(0, 0))), "it holds no observations"),
    "seed_negative": (lambda: _rehashed(lambda ds: ds.assign_coords(seed=("obs", ds.seed.values - 1))),
                      "a negative seed -1"),
}


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("damaged")
    for name, (edit, _) in POSTERIOR_EDITS.items():
        _write_posterior(d / f"{name}.npz", edit)
    _write_posterior(d / "checksummed.npz", _checksummed())
    raw = POSTERIOR.read_bytes()
    (d / "zero.npz").write_bytes(b"")
    (d / "half.npz").write_bytes(raw[: len(raw) // 2])
    (d / "head.npz").write_bytes(raw[:100])
    (d / "flipped_middle.npz").write_bytes(_flipped(raw, len(raw) // 2))  # inside a compressed member
    (d / "flipped_start.npz").write_bytes(_flipped(raw, 2))  # the zip signature
    (d / "image.npz").write_bytes(PNG)
    (d / "text.npz").write_text("E,A,alpha\n1,2,3\n")
    (d / "results_as.npz").write_bytes(MINI_RESULTS.read_bytes())
    with np.load(POSTERIOR) as f:
        arrays = {k: f[k] for k in f.files}
    np.savez(d / "no_meta.npz", **{k: v for k, v in arrays.items() if k != "meta"})
    np.savez(d / "meta_not_json.npz", **(arrays | {"meta": np.array("{'schema': oops")}))
    np.savez(d / "meta_list.npz", **(arrays | {"meta": np.array("[1, 2]")}))

    nc = MINI_RESULTS.read_bytes()
    (d / "zero.nc").write_bytes(b"")
    (d / "half.nc").write_bytes(nc[: len(nc) // 2])
    stored = results.load(MINI_RESULTS).attrs["data_hash"].encode()  # the stored attribute's bytes
    (d / "flipped_hash.nc").write_bytes(_flipped(nc, nc.index(stored) + 3))
    (d / "image.nc").write_bytes(PNG)
    (d / "posterior_as.nc").write_bytes(POSTERIOR.read_bytes())
    ds = results.load(MINI_RESULTS)  # a file from before the tables hash, its task table edited
    del ds.attrs["tables_hash"]
    results.save(_table("task_kind", "OOD" if ds.task_kind.values[0] != "OOD" else "ID", False)(ds), d / "old_kind.nc")
    import h5py

    (d / "codes_out.nc").write_bytes(nc)
    with h5py.File(d / "codes_out.nc", "r+") as f:  # a task code past the end of its table
        codes = f["task"][...]
        codes[0] = 10 ** 6
        f["task"][...] = codes
    for name, (make, _) in DATASET_EDITS.items():
        ds = results.load(MINI_RESULTS)
        ds = make()(ds) or ds
        results.save(ds, d / f"{name}.nc")

    for name, metric, value in (("accuracy_250", "greedy_pass@1", 250.0), ("accuracy_negative", "greedy_pass@1", -0.5),
                                ("loss_negative", "loss", -1.0), ("loss_zero", "loss", 0.0), ("ppl_zero", "ppl", 0)):
        record = json.loads(json.dumps(RECORD))
        record["metrics"][0] |= {"metric": metric, "value": value}
        (d / f"record_{name}").mkdir()
        (d / f"record_{name}" / "result.json").write_text(json.dumps(record))
    for name, literal in (("nan", "NaN"), ("infinity", "Infinity")):
        (d / f"record_{name}").mkdir()
        (d / f"record_{name}" / "result.json").write_text(json.dumps(RECORD).replace("50.0", literal))
    (d / "percent_250.csv").write_text("run,task,metric,value\n1B-20BT,arc_easy,acc,250\n")
    (d / "value_nan.csv").write_text("run,task,metric,value\n1B-20BT,arc_easy,acc,nan\n1B-40BT,arc_easy,acc,50\n")
    return d


def _cases() -> list[tuple[list[str], str]]:
    predict = ["predict", "--pretrain", "160BT", "--posterior"]
    c = [(predict + [f"{{d}}/{name}.npz"], words) for name, (_, words) in POSTERIOR_EDITS.items()]
    c += [(predict + ["{d}/zero.npz"], "not a readable dynsim posterior"),
          (predict + ["{d}/half.npz"], "not a readable dynsim posterior"),
          (predict + ["{d}/head.npz"], "not a readable dynsim posterior"),
          (predict + ["{d}/flipped_middle.npz"], "not a readable dynsim posterior"),
          (predict + ["{d}/flipped_start.npz"], "not a readable dynsim posterior"),
          (predict + ["{d}/image.npz"], "not a readable dynsim posterior"),
          (predict + ["{d}/text.npz"], "not a readable dynsim posterior"),
          (predict + ["{d}/results_as.npz"], "not a readable dynsim posterior"),
          (predict + ["{d}"], "not a readable dynsim posterior"),
          (predict + ["{d}/no_meta.npz"], "not a readable dynsim posterior (KeyError)"),
          (predict + ["{d}/meta_not_json.npz"], "not a readable dynsim posterior (JSONDecodeError)"),
          (predict + ["{d}/meta_list.npz"], "its meta is not a table"),
          # NaN draws are refused even with --force: every prediction would be NaN
          (predict + ["{d}/nan_draw.npz", "--force", "--json"], "non-finite draws in E"),
          # another verb reading a damaged posterior: validate --compare
          (["validate", "--calibration", "evolm", "--compare", "{d}/nan_draw.npz"], "non-finite draws in E"),
          (["validate", "--calibration", "evolm", "--compare", "{d}/rhat_nan.npz"], "failed its diagnostics")]
    # results Datasets: read by fit, validate and figs before any work
    data = {"fit": ["fit", "-o", "{tmp}/p.npz", "--data"],
            "validate": ["validate", "--posterior", str(MINI_POSTERIOR), "--data"],
            "figs": ["figs", "--posterior", str(MINI_POSTERIOR), "--out", "{tmp}/figures", "--data"]}
    verbs = list(data.values())
    c += [(verbs[i % 3] + [f"{{d}}/{name}.nc"], words) for i, (name, (_, words)) in enumerate(DATASET_EDITS.items())]
    c += [(data["fit"] + ["{d}/zero.nc"], "not a readable results Dataset"),
          (data["validate"] + ["{d}/half.nc"], "not a readable results Dataset"),
          (data["figs"] + ["{d}/flipped_hash.nc"], "no longer match their data hash"),
          (data["fit"] + ["{d}/image.nc"], "not a readable results Dataset"),
          (data["validate"] + ["{d}/posterior_as.nc"], "not a readable results Dataset"),
          (data["validate"] + ["{d}/old_kind.nc"], "the Dataset's task table was edited"),
          (data["figs"] + ["{d}/old_kind.nc"], "the Dataset's task table was edited"),
          (data["fit"] + ["{d}/codes_out.nc"], "codes point outside its table"),
          # a Dataset with the posterior of another calibration
          (["figs", "--data", str(MINI_RESULTS), "--posterior", str(POSTERIOR), "--out", "{tmp}/figures"],
           "the posterior was fitted to data"),
          (["validate", "--data", str(MINI_RESULTS), "--calibration", "evolm"], "the posterior was fitted to data")]
    # edited result records and CSVs at import
    imp = ["results", "import", "-o", "{tmp}/r.nc"]
    c += [(imp + [f"{{d}}/record_{name}"], words) for name, words in (
        ("accuracy_250", "250: an accuracy in percent lies in 0-100"),
        ("accuracy_negative", "-0.5: an accuracy in percent"),
        ("loss_negative", "-1: a loss must be positive"),
        ("loss_zero", "0: a loss must be positive"),
        ("ppl_zero", "0: a ppl must be positive"),
        ("nan", "value must be a finite number, got 'nan'"),
        ("infinity", "value must be a finite number, got 'inf'"))]
    return c


CASES = _cases()


@pytest.fixture(autouse=True)
def no_work(monkeypatch):
    """A damaged file that got past its check fails here at once, rather than sampling or drawing."""
    def started(*args, **kwargs):
        raise AssertionError("work started: the damaged file was not refused before it")

    for target in ("calibrate.fit.fit", "calibrate.validate.loco", "calibrate.validate.bayes_holdout",
                   "calibrate.validate.loo_compare", "paper_figs.run"):
        monkeypatch.setattr(target, started)


def test_the_table_is_large():
    assert len(CASES) >= 37


def _files(*folders) -> set:
    return {p for d in folders for p in Path(d).rglob("*")}


@pytest.mark.parametrize("argv, words", CASES,
                         ids=[f"{i:03d}-" + re.sub(r"[^\w.+:=-]+", "_", " ".join(a[-2:]))[-60:] for i, (a, _) in enumerate(CASES)])
def test_a_damaged_artefact_is_refused_in_one_line(argv, words, damaged, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{d}", str(damaged)).replace("{tmp}", str(tmp_path)) for a in argv]
    before = _files(damaged, tmp_path)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert len(err.splitlines()) == 1 and err.endswith("\n"), err
    assert "Traceback" not in err and err.startswith("dynsim: error: "), err
    assert words in err, err
    assert _files(damaged, tmp_path) == before  # nothing written, no folder made


@pytest.mark.parametrize("name, words", [("percent_250", "250: an accuracy in percent"),
                                         ("value_nan", "'nan' is not a finite number")])
def test_an_out_of_range_csv_value_is_refused_not_dropped(name, words, damaged, tmp_path, capsys):
    """A CSV lists each bad row on its own line (README), then the count: not one line, so apart from the table."""
    assert main(["results", "import", str(damaged / f"{name}.csv"), "-o", str(tmp_path / "r.nc")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dynsim: error: ") and "line 2, column 'value': " + words in err and "Traceback" not in err
    assert err.splitlines()[-1].endswith("1 bad row(s); nothing imported") and not any(tmp_path.iterdir())


def test_the_undamaged_copies_are_accepted(damaged, capsys):
    """The cases above fail for their damage alone: the same posterior with its checksum predicts, and the bundled
    files verify (a file without a checksum is accepted, one with a checksum is checked)."""
    post = posterior.load(damaged / "checksummed.npz")
    assert post.meta[posterior.CHECKSUM].startswith("sha256:") and post.diagnostic_problems() == []
    assert main(["predict", "--pretrain", "160BT", "--posterior", str(damaged / "checksummed.npz"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert all(math.isfinite(p["mean"]) for p in out["predictions"])
    for name in calibrations.CALIBRATIONS:  # every bundled posterior carries its checksum, and it verifies
        assert posterior.load(posterior.bundled_path(name)).meta[posterior.CHECKSUM].startswith("sha256:")
    assert results.load(MINI_RESULTS).attrs["data_hash"]
