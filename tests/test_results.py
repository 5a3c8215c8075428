"""The results Dataset: EvoLM CSV → Dataset → netCDF round trip, provenance, clear errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import xarray as xr

from dynsim import results
from dynsim.config import parse_config


@pytest.fixture(scope="module")
def evolm():
    return results.from_evolm_csv()


def test_schema_and_values(evolm):
    assert evolm.value.dims == (results.OBS,) and set(results.KEYS) <= set(evolm.coords)
    cfg = parse_config("1B-160BT-8+42BT-100Kep1")
    at = np.ones(evolm.sizes[results.OBS], bool)
    for field in results.CONFIG_DIMS:
        at &= evolm[field].values == getattr(cfg, field)
    at &= (evolm.task.values == "GSM8K-Platinum") & (evolm.metric.values == "greedy_pass@1")
    assert evolm.value.values[at].tolist() == [pytest.approx(21.01)]
    assert evolm.task_kind.sel(tasks="OOD_avg").item() == "OOD"
    assert "Qi et al. 2025" in evolm.attrs["citation"] and len(evolm.attrs["data_hash"]) == 16
    # every printed number is a cell (two cells are printed twice: Table 3 and Table 4 agree within 0.01)
    assert len(results.to_long(evolm)) == 100 and evolm.attrs["duplicates_averaged"] == 2


def test_intermediate_checkpoints_are_their_own_configs(evolm):
    names = {c.name for c in results.configs(evolm)}
    assert {"1B-20of160BT", "1B-40of160BT-100Kep1", "1B-20BT"} <= names


def test_netcdf_round_trip(evolm, tmp_path):
    path = results.save(evolm, tmp_path / "evolm.nc")
    back = results.load(path)
    xr.testing.assert_identical(evolm, back)
    assert results.data_hash(back) == evolm.attrs["data_hash"]
    assert not list(tmp_path.glob(".*.tmp*"))  # the temporary file was renamed away


def test_records_round_trip(tmp_path):
    import json
    rec = {"schema": "dynsim.result/1", "config": "0.3M-4MT-1+3MT-2Kep1", "seed": 1,
           "metrics": [{"task": "arith", "metric": "greedy_pass@1", "value": 40.0, "n_items": 200, "n_correct": 80}],
           "tasks": {"arith": {"kind": "ID", "chance": 0.0}}, "provenance": {"code_version": "x"}}
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "result.json").write_text(json.dumps(rec))
    ds = results.from_records([tmp_path])
    long = results.to_long(ds)
    assert len(long) == 1 and long.n_correct.item() == 80 and long.seed.item() == 1
    assert parse_config("0.3M-4MT-1+3MT-2Kep1").size in ds.size.values


@pytest.mark.parametrize("content, msg", [(None, "no such"), (b"not netcdf", "not a readable")])
def test_bad_files_give_clear_errors(tmp_path, content, msg):
    path = tmp_path / "x.nc"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(results.ResultsError, match=msg):
        results.load(path)


def _dense(ds):
    """The earlier on-disk form: one dimension per key, NaN where nothing was measured."""
    df = results.to_long(ds).set_index(list(results.KEYS))
    cube = xr.Dataset.from_dataframe(df[["value"]])
    meta = dict(task_kind=("task", ds.task_kind.values), task_chance=("task", ds.task_chance.values),
                task_n_items=("task", ds.task_n_items.values))
    attrs = ds.attrs | {"data_hash": results._text_hash(results.to_long(ds))}  # the earlier files' hash
    return cube.assign_coords(meta).assign_attrs(attrs)


def test_files_of_the_dense_form_still_load(evolm, tmp_path):
    dense = _dense(evolm)
    assert dense.value.size > 1000 * dense.value.count()  # mostly empty: why the form was left
    dense.to_netcdf(tmp_path / "old.nc", engine="h5netcdf")
    back = results.load(tmp_path / "old.nc")
    assert back.attrs["data_hash"] == evolm.attrs["data_hash"]  # the same numbers, keyed the same
    assert {c.name for c in results.configs(back)} == {c.name for c in results.configs(evolm)}
    assert back.task_kind.sel(tasks="OOD_avg").item() == "OOD"
    dense["value"] = dense.value + 0.5
    dense.to_netcdf(tmp_path / "edited.nc", engine="h5netcdf")
    with pytest.raises(results.ResultsError, match="no longer match their data hash"):
        results.load(tmp_path / "edited.nc")


def test_an_edited_number_is_caught_by_the_data_hash(evolm, tmp_path):
    path = results.save(evolm, tmp_path / "evolm.nc")
    edited = xr.open_dataset(path, engine="h5netcdf").load()
    edited["value"][3] += 1.0
    edited.to_netcdf(tmp_path / "edited.nc", engine="h5netcdf")
    with pytest.raises(results.ResultsError, match="no longer match their data hash"):
        results.load(tmp_path / "edited.nc")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["0.1M-1MT", "0.3M-2MT", "1B-20of160BT", "1B-160BT-8+42BT-100Kep1"]),
                          st.sampled_from(["arith", "logic"]), st.sampled_from(["loss", "greedy_pass@1"]),
                          st.integers(0, 2), st.floats(0.001, 100)), min_size=1, max_size=30))  # a loss > 0
def test_rows_survive_a_disk_round_trip_in_any_order(tmp_path_factory, rows):
    """Any rows → save → load gives the same observations, repeated keys averaged, whatever the row order."""
    make = [dict(config=parse_config(n), task=t, metric=m, seed=s, value=v) for n, t, m, s, v in rows]
    ds = results.from_rows(make, {}, {"title": "t"})
    assert results.from_rows(make[::-1], {}, {"title": "t"}).attrs["data_hash"] == ds.attrs["data_hash"]
    back = results.load(results.save(ds, tmp_path_factory.mktemp("rt") / "r.nc"))
    xr.testing.assert_identical(ds, back)
    keys = {(parse_config(n).name, t, m, s) for n, t, m, s, _ in rows}
    assert back.sizes[results.OBS] == len(keys)
    first = rows[0]
    same = [v for n, t, m, s, v in rows if (parse_config(n).name, t, m, s) == (parse_config(first[0]).name, *first[1:4])]
    long = results.to_long(back)
    cfg = parse_config(first[0])
    hit = long[(long["size"] == cfg.size) & (long.pretrain == cfg.pretrain) & (long.pretrain_schedule == cfg.pretrain_schedule)
               & (long.sft_examples == cfg.sft_examples) & (long.task == first[1]) & (long.metric == first[2])
               & (long.seed == first[3])]
    assert hit.value.item() == pytest.approx(np.mean(same))


TUNED = ["1B-1.43of3.09TT", "1B-1.43of3.09TT-mnli:6Kep3", "1B-1.43of3.09TT-paws:6Kep3", "1B-1.43of3.09TT-6Kep3",
         "1B-3.09TT-mnli:6Kep3-1Kep2", "1B-160BT-8+42BT-100Kep1"]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(TUNED), st.sampled_from(["mnli_matched", "paws"]), st.integers(0, 1),
                          st.floats(0, 100)), min_size=1, max_size=20))
def test_the_sft_data_set_survives_a_disk_round_trip(tmp_path_factory, rows):
    """Runs that differ only in their SFT data stay apart, through save and load, with the same data hash."""
    make = [dict(config=parse_config(n), task=t, metric="greedy_pass@1", seed=s, value=v) for n, t, s, v in rows]
    ds = results.from_rows(make, {}, {"title": "t"})
    named = any(parse_config(n).sft_data for n, *_ in rows)
    assert (results.SFT_DATA in ds.coords) == named  # absent where no run names its data, as before the field
    back = results.load(results.save(ds, tmp_path_factory.mktemp("rt") / "r.nc"))
    xr.testing.assert_identical(ds, back)
    assert results.data_hash(back) == ds.attrs["data_hash"]
    assert {c.name for c in results.configs(back)} == {n for n, *_ in rows}
    assert back.sizes[results.OBS] == len({(n, t, s) for n, t, s, _ in rows})
    kept = results.select(back, results.to_long(back).task.values == rows[0][1], "one task")
    assert {c.name for c in results.configs(kept)} == {n for n, t, *_ in rows if t == rows[0][1]}


def test_a_dataset_without_sft_data_is_the_same_data_as_before_the_field(evolm, tmp_path):
    """A column of empty SFT data names is no data: the Dataset, its coordinates and its hash are those of old."""
    assert results.SFT_DATA not in evolm.coords and "sft_datasets" not in evolm.coords
    df = results.to_long(evolm).assign(sft_data="")
    tasks = {str(t): dict(kind=k, chance=c) for t, k, c in zip(evolm.tasks.values, evolm.task_kind.values,
                                                                  evolm.task_chance.values)}
    again = results.from_frame(df, tasks, {})
    assert results.SFT_DATA not in again.coords and again.attrs["data_hash"] == evolm.attrs["data_hash"]
    assert all(c.sft_data == "" for c in results.configs(results.load(results.save(evolm, tmp_path / "e.nc"))))
