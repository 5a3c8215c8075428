"""The stage tree and study specs: sharing, dedup, ordering, WSD token accounting, one-line spec errors. No torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dynsim.config import RunConfig, parse_config
from dynsim.study import StudyError, load_study
from dynsim.tree import accounting, build_tree, descendants, format_plan, tree_for, wsd_stable_tokens

REPO = Path(__file__).resolve().parents[1]
B = 10**9


def names(nodes):
    return [n.name for n in nodes]


def test_prefixes_are_shared_and_deduplicated():
    runs = [parse_config(n) for n in ("1B-160BT-8+42BT-100Kep1-100Kep8", "1B-160BT-8+42BT-100Kep1-100Kep2",
                                      "1B-160BT-8+42BT-200Kep1", "1B-160BT-0+50BT", "1B-160BT-8+42BT-100Kep1-100Kep8")]
    nodes = build_tree(runs, pt_schedule="cosine", tokens_per_example=dict(sft=500, rl=1000))
    assert names(nodes) == ["1B-160BT", "1B-160BT-0+50BT", "1B-160BT-8+42BT", "1B-160BT-8+42BT-100Kep1",
                            "1B-160BT-8+42BT-200Kep1", "1B-160BT-8+42BT-100Kep1-100Kep2",
                            "1B-160BT-8+42BT-100Kep1-100Kep8"]
    assert len({n.config for n in nodes}) == len(nodes)
    by = {n.name: n for n in nodes}
    assert by["1B-160BT"].tokens == 160 * B and by["1B-160BT"].kind == "pt" and by["1B-160BT"].level == 0
    assert by["1B-160BT-8+42BT"].tokens == 50 * B and by["1B-160BT-8+42BT"].parent == parse_config("1B-160BT")
    assert by["1B-160BT-8+42BT-200Kep1"].tokens == 200_000 * 500
    assert by["1B-160BT-8+42BT-100Kep1-100Kep8"].tokens == 100_000 * 8 * 1000
    assert by["1B-160BT-8+42BT-100Kep1-100Kep8"].flops == 6 * 10**9 * 100_000 * 8 * 1000
    assert len(descendants(nodes, parse_config("1B-160BT-8+42BT"))) == 4


def test_fine_tuning_on_other_data_branches_from_one_checkpoint():
    """Amuro & Char's design: one pretraining checkpoint, fine-tuned on each data set apart."""
    runs = [parse_config(f"1B-1.43of3.09TT-{d}:6Kep3") for d in ("mnli", "paws", "xsum")]
    nodes = build_tree(runs, pt_schedule="cosine", tokens_per_example=dict(sft=100))
    assert names(nodes) == ["1B-1.43of3.09TT", "1B-1.43of3.09TT-mnli:6Kep3", "1B-1.43of3.09TT-paws:6Kep3",
                            "1B-1.43of3.09TT-xsum:6Kep3"]
    assert {n.parent for n in nodes[1:]} == {parse_config("1B-1.43of3.09TT")}
    assert all(n.kind == "sft" and n.tokens == 6_000 * 3 * 100 for n in nodes[1:])
    assert len(descendants(nodes, parse_config("1B-1.43of3.09TT"))) == 3


def test_parents_come_before_children():
    study = load_study(REPO / "studies" / "evolm_1b.toml")
    nodes = tree_for(study)
    seen = set()
    for n in nodes:
        assert n.parent is None or n.parent in seen, n.name
        assert n.level == (0 if n.parent is None else next(p.level for p in nodes if p.config == n.parent) + 1)
        seen.add(n.config)


def test_wsd_budgets_branch_from_one_stable_run():
    runs = [RunConfig(10**9, d * B) for d in (20, 40, 80, 160, 320)]
    nodes = build_tree(runs, pt_schedule="wsd", decay_frac=0.1)
    stable = nodes[0]
    assert stable.kind == "stable" and stable.config == RunConfig(10**9, 288 * B, pretrain_schedule=320 * B)
    assert stable.name == "1B-288of320BT" and stable.tokens == 288 * B
    assert stable.branches == tuple(d * B for d in (20, 40, 80, 160, 320))
    decays = nodes[1:]
    assert all(n.kind == "decay" and n.parent == stable.config and n.level == 1 for n in decays)
    assert [n.tokens for n in decays] == [d * B // 10 for d in (20, 40, 80, 160, 320)]
    a = accounting(nodes, runs)
    assert a["pt_tree"] == (288 + 62) * B and a["pt_independent"] == 620 * B
    assert a["pt_ratio"] == pytest.approx(350 / 620)
    assert wsd_stable_tokens(160 * B, 0.2) == 128 * B


def test_wsd_per_size_and_single_budget_is_a_plain_run():
    runs = [RunConfig(10**9, 20 * B), RunConfig(10**9, 40 * B), RunConfig(5 * 10**8, 10 * B)]
    nodes = build_tree(runs, pt_schedule="wsd", decay_frac=0.2)
    kinds = {n.name: n.kind for n in nodes}
    assert kinds == {"1B-32of40BT": "stable", "1B-20BT": "decay", "1B-40BT": "decay", "0.5B-10BT": "pt"}
    cosine = build_tree(runs, pt_schedule="cosine")
    assert {n.kind for n in cosine} == {"pt"}
    assert accounting(cosine, runs)["pt_ratio"] == 1.0


def test_evolm_1b_plan_meets_the_pt_token_goal():
    study = load_study(REPO / "studies" / "evolm_1b.toml")
    nodes = tree_for(study)
    a = accounting(nodes, study.runs, study.tokens_per_example)
    assert a["pt_ratio"] <= 0.6
    assert {n.name for n in nodes if n.stage == "pt"} >= {"1B-20BT", "1B-320BT", "1B-288of320BT"}
    assert "1B-160BT-8+42BT-100Kep1-100Kep8" in names(nodes)
    text = format_plan(study, nodes)
    assert "PT axis" in text and f"{a['pt_ratio']:.3f}x" in text


def test_mini_study_loads():
    study = load_study(REPO / "studies" / "mini.toml")
    assert study.executor == "local" and study.seeds == (0,)
    kinds = [n.kind for n in tree_for(study)]
    assert kinds.count("stable") == 1 and kinds.count("decay") == 2 and kinds.count("rl") == 4
    assert study.train_recipe()["pt"] == {"warmup_steps": 5, "schedule": "wsd", "decay_frac": 0.2}


GOOD = """
[study]
name = "t"
[tokens_per_example]
sft = 10
rl = 10
[[grid]]
size = ["0.1M"]
pretrain = ["1MT"]
sft = ["none", "1Kep1"]
rl = ["none", "1Kep1"]
"""


@pytest.mark.parametrize("text, message", [
    ("[study\n", "not valid TOML"),
    (GOOD + "[bogus]\n", "unknown key 'bogus' in [top level]"),
    (GOOD.replace('name = "t"', 'name = "t"\nexecutor = "pbs"'), "executor must be one of local, slurm"),
    (GOOD.replace('name = "t"', 'name = "t"\nseeds = [-1]'), "seeds must be a non-empty list"),
    (GOOD.replace('"1MT"', '"1MB"'), "[grid 1] pretrain: bad pretraining tokens '1MB'"),
    (GOOD.replace('size = ["0.1M"]\n', ''), "[grid 1] needs 'size'"),
    (GOOD.replace("sft = 10", "sft = 0"), "[tokens_per_example] needs sft > 0"),
    (GOOD.replace('"1Kep1"]\nrl', '"mnli:1Kep1"]\nrl'), "[grid 1] sft: bad SFT budget 'mnli:1Kep1': no data set"),
    (GOOD + "[schedule]\ndecay_frac = 1.5\n", "decay_frac must lie strictly between 0 and 1"),
    (GOOD + "[resources.pt]\ngpus = \"two\"\n", "[resources.pt] gpus must be an integer"),
    ("[study]\nname = 't'\n", "needs at least one [[grid]]"),
    (GOOD.replace('name = "t"', 'name = "t"\nholdout = "0.1M-1MT"'), "[study] holdout must be a list"),
    (GOOD.replace('name = "t"', 'name = "t"\nholdout = [3]'), "[study] holdout entries must be run names"),
    (GOOD.replace('name = "t"', 'name = "t"\nholdout = ["0.1M-1MB"]'), "[study] holdout: bad pretraining tokens"),
    (GOOD.replace('name = "t"', 'name = "t"\nholdout = ["0.1M-2MT"]'), "[study] holdout: '0.1M-2MT' is not a run"),
])
def test_bad_specs_give_one_line_errors(tmp_path, text, message):
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(StudyError) as e:
        load_study(path)
    assert message in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


def test_holdout_names_runs_of_the_grid(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(GOOD.replace('name = "t"', 'name = "t"\nholdout = ["0.1M-1MT-1Kep1", "0.1M-1MT-1Kep1"]'))
    assert [c.name for c in load_study(path).holdout] == ["0.1M-1MT-1Kep1"]
    path.write_text(GOOD)
    assert load_study(path).holdout == ()
    study = load_study(REPO / "studies" / "mini_evolm.toml")
    assert len(study.holdout) == 5 and set(study.holdout) <= set(study.runs)


def test_mini_evolm_meets_issue_6_grid():
    study = load_study(REPO / "studies" / "mini_evolm.toml")
    sizes = {c.size for c in study.runs}
    assert len(sizes) >= 2
    small = min(sizes)
    budgets = sorted({c.pretrain for c in study.runs if c.size == small})
    assert len(budgets) >= 5 and budgets[0] / small <= 10 and budgets[-1] / small >= 300
    cpt = {(c.cpt_replay, c.cpt_domain) for c in study.runs if c.has_cpt}
    totals = {}
    for r, d in cpt:
        totals.setdefault(r + d, set()).add(r / (r + d))
    assert any(r == 0 for r, _ in cpt) and max(len(v) for v in totals.values()) >= 4
    seed1 = load_study(REPO / "studies" / "mini_evolm_seed1.toml")
    assert set(seed1.runs) <= set(study.runs) and seed1.recipe == study.recipe and seed1.seeds == (1,)


def test_rl_without_sft_combinations_are_left_out(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(GOOD)
    runs = {c.name for c in load_study(path).runs}
    assert runs == {"0.1M-1MT", "0.1M-1MT-1Kep1", "0.1M-1MT-1Kep1-1Kep1"}


def test_cli_plan_is_light_and_errors_are_one_line(tmp_path):
    code = ("import sys; from dynsim.cli import main; rc = main(['sweep', 'plan', 'studies/mini.toml']); "
            "assert 'torch' not in sys.modules and 'submitit' not in sys.modules, 'heavy import'; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "0.1M-320of400KT" in r.stdout and "PT axis" in r.stdout
    r = subprocess.run([sys.executable, "-m", "dynsim.cli", "sweep", "plan", str(tmp_path / "nope.toml")],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no such study file" in r.stderr


def test_cli_status_and_collect_before_any_run(tmp_path, capsys):
    from dynsim.cli import main

    assert main(["sweep", "status", "studies/mini.toml", "--runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "15 jobs: not submitted 15" in out and "0.1M-320of400KT/seed0" in out
    assert main(["sweep", "collect", "studies/mini.toml", "--runs", str(tmp_path), "-o", str(tmp_path / "r.nc")]) == 2
    err = capsys.readouterr().err
    assert "no results yet" in err and err.count("\n") == 1
    assert main(["sweep", "submit", "studies/mini.toml", "--runs", str(tmp_path), "--detach"]) == 2
    assert "--detach needs the slurm executor" in capsys.readouterr().err
