"""A user's own runs as a long CSV (dynsim.runs_csv): the documented format, its checks, its round trip."""

import gzip

import pytest

from dynsim import cli, results, runs_csv

HAND_WRITTEN = """run,checkpoint,seed,task,metric,value,n_items,n_correct,task_kind,task_chance
1B-160BT,20BT,0,arc_easy,acc,55.1,2376,1309,upstream,25
1B-160BT,,0,arc_easy,acc,62.0,2376,1473,upstream,25
1B-160BT,,1,arc_easy,acc,61.0,2376,1449,upstream,25
1B-160BT,,0,c4_val,loss,2.91,,,text,
1B-160BT-8+42BT-100Kep1,,0,arc_easy,acc,60.5,2376,1437,upstream,25
"""


def test_a_hand_written_csv_imports_with_checkpoints_seeds_and_counts(tmp_path):
    (tmp_path / "runs.csv").write_text(HAND_WRITTEN)
    ds = runs_csv.read(tmp_path / "runs.csv")
    assert {c.name for c in results.configs(ds)} == {"1B-20of160BT", "1B-160BT", "1B-160BT-8+42BT-100Kep1"}
    long = results.to_long(ds)
    assert len(long) == 5 and sorted(long.seed.unique()) == [0, 1]
    assert long.n_correct.sum() == 1309 + 1473 + 1449 + 1437
    assert ds.task_kind.sel(tasks="c4_val").item() == "text" and ds.task_chance.sel(tasks="arc_easy").item() == "25"


@pytest.mark.parametrize("source", ["evolm", "gadre_per_task"])
@pytest.mark.parametrize("by_columns", [True, False])
def test_a_dataset_written_as_csv_reads_back_to_the_same_data(tmp_path, source, by_columns):
    ds = results.from_evolm_csv() if source == "evolm" else results.from_gadre_csv(per_task=True)
    path = runs_csv.write(ds, tmp_path / "runs.csv", by_columns=by_columns)
    back = runs_csv.read(path)
    assert back.attrs["data_hash"] == ds.attrs["data_hash"]
    for meta in ("task_kind", "task_chance", "task_n_benchmarks"):
        assert back[meta].values.tolist() == ds[meta].values.tolist()
    if source != "evolm":
        assert list(back.corpora.values) == list(results.GADRE_CORPORA)
    gz = tmp_path / "runs.csv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert runs_csv.read(gz).attrs["data_hash"] == ds.attrs["data_hash"]


BAD = [  # (a row after the header "size,pretrain,task,metric,value,seed", the column named, words of the message)
    ("1.3B,26BT,arc_easy,acc,0.5x,0", "value", "not a finite number"),
    ("1.3B,,arc_easy,acc,55,0", "pretrain", "empty"),
    ("1.3Q,26BT,arc_easy,acc,55,0", "size", "not a count"),
    ("1.3B,26BT,arc_easy,acc,155,0", "value", "0-100"),
    ("1.3B,26BT,c4,loss,-1,0", "value", "must be positive"),
    ("1.3B,26BT,arc_easy,acc,55,-2", "seed", "whole number"),
    ("1.3B,26BT,,acc,55,0", "task", "empty"),
]


def test_every_bad_row_is_named_with_its_column_and_nothing_is_written(tmp_path):
    good = "1.3B,26BT,arc_easy,acc,55,0"
    text = "size,pretrain,task,metric,value,seed\n" + "\n".join([good] + [row for row, _, _ in BAD] + [good]) + "\n"
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(runs_csv.CSVError) as e:
        runs_csv.read(tmp_path / "bad.csv")
    lines = str(e.value).splitlines()
    assert len(lines) == len(BAD) + 1 and f"{len(BAD)} bad row(s); nothing imported" in lines[-1]
    for line_no, (line, (_, column, words)) in enumerate(zip(lines, BAD), start=3):
        assert f"line {line_no}, column '{column}'" in line and words in line, line
    assert cli.main(["results", "import", str(tmp_path / "bad.csv"), "-o", str(tmp_path / "out.nc")]) == 2
    assert not (tmp_path / "out.nc").exists() and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("text, words", [
    ("run,task,metric,vale\n1B-20BT,a,acc,5\n", "unknown column(s) 'vale'"),
    ("task,metric,value\na,acc,5\n", "missing column(s) run (or size and pretrain)"),
    ("run,task,metric,value\n", "no rows"),
    ("run,size,pretrain,task,metric,value\n1B-20BT,1B,20BT,a,acc,5\n", "also given by columns"),
    ("run,checkpoint,task,metric,value\n1B-20BT,40BT,a,acc,5\n", "outside the run's"),
    ("run,checkpoint,task,metric,value\n1B-20BT-100Kep1,10BT,a,acc,5\n", "pretraining run's schedule"),
    ("run,task,metric,value,task_kind\n1B-20BT,a,acc,5,ID\n1B-40BT,a,acc,6,OOD\n", "has task_kind"),
    ("run,task,metric,value,n_items,n_correct\n1B-20BT,a,acc,5,10,11\n", "more correct than items"),
    ("run,sft_data,task,metric,value\n1B-20BT-1Kep1,mnli,a,acc,5\n", "also given by columns"),
    ("size,pretrain,sft_examples,sft_epochs,sft_data,task,metric,value\n1B,20BT,1K,1,MNLI,a,acc,5\n",
     "column 'sft_data': bad SFT data name 'MNLI'"),
    ("size,pretrain,sft_data,task,metric,value\n1B,20BT,mnli,a,acc,5\n", "column 'sft_data': 'mnli' names SFT data"),
    ("run,task,metric,value\n1B-20BT-Mnli:1Kep1,a,acc,5\n", "column 'run': bad SFT stage"),
])
def test_malformed_tables_are_refused_in_words(tmp_path, text, words):
    (tmp_path / "r.csv").write_text(text)
    with pytest.raises(runs_csv.CSVError, match=None) as e:
        runs_csv.read(tmp_path / "r.csv")
    assert words in str(e.value)


def test_not_a_csv_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "r.csv").write_bytes(b"\xff\xfe\x00garbage")
    assert cli.main(["results", "import", str(tmp_path / "r.csv"), "-o", str(tmp_path / "o.nc")]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_the_cli_imports_a_csv_into_a_dataset_that_loads(tmp_path, capsys):
    (tmp_path / "runs.csv").write_text(HAND_WRITTEN)
    assert cli.main(["results", "import", str(tmp_path / "runs.csv"), "-o", str(tmp_path / "r.nc")]) == 0
    assert "3 configurations, 5 numbers" in capsys.readouterr().out
    assert results.load(tmp_path / "r.nc").attrs["data_hash"] == runs_csv.read(tmp_path / "runs.csv").attrs["data_hash"]


@pytest.mark.slow
def test_the_readme_example_imports_fits_and_predicts(tmp_path, capsys, monkeypatch):
    """README 'Your own runs', as written: import the example CSV, fit it, predict a larger model from it."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("## Your own runs", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split() for line in block.strip().splitlines()]
    assert [c[:3] for c in commands] == [["dynsim", "results", "import"], ["dynsim", "fit", "--data"],
                                         ["dynsim", "predict", "--posterior"]]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "example_runs.csv").write_bytes(
        (Path(__file__).resolve().parents[1] / "studies" / "example_runs.csv").read_bytes())
    for argv in commands:
        assert cli.main(argv[1:] + (["--quiet"] if argv[1] == "fit" else [])) == 0, argv
    out = capsys.readouterr().out
    assert "! extrapolating" in out  # 3.2B lies beyond the 190M-1.3B runs fitted
    loss = re.search(r"c4_en_val\s+loss\s+([\d.]+)\s+\[\s*([\d.]+),\s*([\d.]+)\]", out)
    assert loss and 2.3 < float(loss[1]) < 3.3, out  # the 1.3B runs reach ~2.9 nats at 52BT; 3.2B at 64BT is lower


TUNED = """run,task,metric,value,task_kind,task_chance
1B-1.43of3.09TT,mnli_matched,greedy_pass@1,34.3,ID,33.33
1B-1.43of3.09TT-mnli:6Kep3,mnli_matched,greedy_pass@1,78.7,ID,33.33
1B-1.43of3.09TT-paws:6Kep3,mnli_matched,greedy_pass@1,33.0,ID,33.33
1B-1.43of3.09TT-6Kep3,mnli_matched,greedy_pass@1,50.0,ID,33.33
1B-3.09TT-tulu:326.154Kep5,mnli_matched,greedy_pass@1,45.2,ID,33.33
"""


@pytest.mark.parametrize("by_columns", [True, False])
def test_runs_on_other_sft_data_round_trip_through_the_csv(tmp_path, by_columns):
    """The data set in run names or in its own column: the same runs, and write → read keeps the data hash."""
    (tmp_path / "tuned.csv").write_text(TUNED)
    ds = runs_csv.read(tmp_path / "tuned.csv")
    names = [line.split(",")[0] for line in TUNED.strip().splitlines()[1:]]
    assert sorted(c.name for c in results.configs(ds)) == sorted(names)
    assert sorted(ds.sft_datasets.values) == ["", "mnli", "paws", "tulu"]
    path = runs_csv.write(ds, tmp_path / "again.csv", by_columns=by_columns)
    header = path.read_text().splitlines()[0].split(",")
    assert ("sft_data" in header) == by_columns and ("run" in header) != by_columns
    assert runs_csv.read(path).attrs["data_hash"] == ds.attrs["data_hash"]
    assert results.load(results.save(ds, tmp_path / "t.nc")).attrs["data_hash"] == ds.attrs["data_hash"]


def test_the_cli_imports_a_gzipped_csv(tmp_path, capsys):
    (tmp_path / "runs.csv.gz").write_bytes(gzip.compress(TUNED.encode()))
    assert cli.main(["results", "import", str(tmp_path / "runs.csv.gz"), "-o", str(tmp_path / "r.nc")]) == 0
    assert "5 configurations, 5 numbers" in capsys.readouterr().out
    assert "mnli" in results.load(tmp_path / "r.nc").sft_data.values
