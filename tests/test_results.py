"""The results Dataset: EvoLM CSV → Dataset → netCDF round trip, provenance, clear errors."""

import numpy as np
import pytest
import xarray as xr

from dynsim import results
from dynsim.config import parse_config


@pytest.fixture(scope="module")
def evolm():
    return results.from_evolm_csv()


def test_schema_and_values(evolm):
    assert set(results.DIMS) == set(evolm.value.dims)
    cell = evolm.value.sel(size=10**9, pretrain=160 * 10**9, pretrain_schedule=0, cpt_replay=8 * 10**9,
                           cpt_domain=42 * 10**9, sft_examples=100_000, sft_epochs=1, rl_examples=0, rl_epochs=0,
                           task="GSM8K-Platinum", metric="greedy_pass@1", seed=0)
    assert float(cell) == pytest.approx(21.01)
    assert evolm.task_kind.sel(task="OOD_avg").item() == "OOD"
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
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed away


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
