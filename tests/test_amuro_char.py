"""The Amuro & Char testbed (dynsim/data/amuro_char/): OLMo-1B's checkpoints, each fine-tuned on one data set, as a
long CSV that the ordinary reader loads with the SFT data as part of every fine-tuned run."""

import gzip
from collections import Counter
from pathlib import Path

import pytest

from dynsim import cli, results, runs_csv

DATA = Path(__file__).resolve().parents[1] / "dynsim" / "data" / "amuro_char"
SHARED = Path(__file__).resolve().parents[2] / "shared"
TOKENS_PER_STEP = 4_194_304
STEPS = (1_000, 18_000, 342_000, 424_000, 505_000, 592_000, 738_000)
SFT = {"mnli": (6_000, 3), "paws": (6_000, 3), "socialiqa": (6_000, 3), "xsum": (6_000, 3), "tulu": (326_154, 5)}


@pytest.fixture(scope="module")
def ds():
    return runs_csv.read(DATA / "runs.csv.gz")


def test_every_checkpoint_is_a_base_run_and_each_but_the_last_is_fine_tuned_on_each_data_set(ds):
    runs = results.configs(ds)
    base = sorted(c.pretrain for c in runs if not c.has_sft)
    assert base == [s * TOKENS_PER_STEP for s in STEPS]
    tuned = Counter((c.sft_data, c.pretrain // TOKENS_PER_STEP) for c in runs if c.has_sft)
    assert tuned == Counter({(d, s): 1 for d in SFT for s in STEPS[:-1]})  # 738k's fine-tuned: the blind check
    for c in runs:
        assert c.size == 2**30 and c.stage() in ("pt", "sft")
        assert c.annealed == (c.pretrain == STEPS[-1] * TOKENS_PER_STEP)
        assert c.annealed or c.pretrain_schedule == STEPS[-1] * TOKENS_PER_STEP
        if c.has_sft:
            assert (c.sft_examples, c.sft_epochs) == SFT[c.sft_data]
    assert "1.073741824B-1.434451968of3.095396352TT-mnli:6Kep3" in {c.name for c in runs}


def test_the_numbers_are_4shot_accuracies_of_the_classification_sets(ds):
    long = results.to_long(ds)
    assert len(long) == 197 and set(long.metric) == {"greedy_pass@1"}
    assert long.value.between(0, 100).all() and ds.attrs["duplicates_averaged"] == 0
    assert set(ds.task_kind.values) == {"ID"}
    chance = dict(zip(ds.tasks.values, ds.task_chance.values))
    assert {t for t, c in chance.items() if c == "50"} == {"rte", "rte_instruct", "paws", "paws_instruct",
                                                          "paws_inputoutput"}
    assert all(c == "33.33" for t, c in chance.items() if t.startswith(("mnli", "gpt3nli")))
    left_out = ("xsum", "xlsum", "cnn", "socialiqa", "sciq", "tweetqa", "qqp", "stsb", "llmbar")
    assert not any(t.startswith(left_out) for t in ds.tasks.values)
    # one number as the source prints it: 342k fine-tuned on MNLI, evaluated on MNLI matched, 4-shot
    at = long[(long.sft_data == "mnli") & (long.pretrain == 342_000 * TOKENS_PER_STEP) & (long.task == "mnli_matched")]
    assert at.value.item() == pytest.approx(78.7, abs=0.05)
    # each fine-tuned run has its in-domain set: MNLI, PAWS on themselves; tulu only on mnli_matched_instruct
    per_run = long[long.sft_data != ""].groupby("sft_data").task.agg(set)
    assert "mnli_matched" in per_run["mnli"] and "paws" in per_run["paws"]
    assert per_run["tulu"] == {"mnli_matched_instruct"}


def test_the_cli_imports_it_with_the_sft_data_coordinate(tmp_path, capsys, ds):
    assert cli.main(["results", "import", str(DATA / "runs.csv.gz"), "-o", str(tmp_path / "ac.nc")]) == 0
    assert "37 configurations, 197 numbers" in capsys.readouterr().out
    back = results.load(tmp_path / "ac.nc")
    assert list(back.sft_datasets.values) == ["", "mnli", "paws", "socialiqa", "tulu", "xsum"]
    assert back.attrs["data_hash"] == ds.attrs["data_hash"]
    assert runs_csv.read(runs_csv.write(back, tmp_path / "again.csv")).attrs["data_hash"] == ds.attrs["data_hash"]


@pytest.mark.skipif(not (SHARED / "amuro_char" / "all_perf_table.csv").exists(), reason="the source is not here")
def test_the_bundled_csv_is_what_the_source_makes():
    from calibrate import testbeds

    made = testbeds.csv_text(testbeds.amuro_char(SHARED))
    assert gzip.decompress((DATA / "runs.csv.gz").read_bytes()).decode() == made
