"""End-to-end miniature training on the committed sample corpus: PT learns, SFT teaches the task, RL raises
reward, a SIGKILLed run resumes to the same record, records follow the dynsim.result/1 schema."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dynsim.config import ConfigError
from train_runs import data, evaluate, stages, tasks
from dynsim.tree import run_dir
from train_runs.train import load_model, load_recipe, make_context, train

# one thread: the tests share a 2-core machine with other work, where 2 OpenMP threads spin-wait and crawl
RECIPE = {"data": {"general_corpus": "sample"}, "run": {"checkpoint_every": 25, "threads": 1},
          "eval": {"n_items": 100, "k": 4, "cloze_items": 100, "text_tokens": 8192}}
PT = "0.2M-0.6MT"
SFT = "0.2M-0.6MT-1Kep1"  # a quick SFT: learns the answer format, not yet the arithmetic
# a budget that learns single-digit arithmetic (CPT on worked solutions first, as the prototype found): slow
SLOW_SFT = "0.3M-0.6MT-0.2+1MT-4Kep2"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("DYNSIM_CACHE", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def store(cache, tmp_path_factory):
    # DYNSIM_TEST_RUNS: a run store to reuse across sessions (development only: the slow tests then train just
    # what is missing there; checkpoints of another recipe are refused, so it cannot mix results). CI leaves it unset.
    reuse = os.environ.get("DYNSIM_TEST_RUNS")
    return Path(reuse) if reuse else tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def ctx(cache):
    return make_context(load_recipe(RECIPE, 200_000), seed=0)


def unigram_cross_entropy(train_tokens: np.ndarray, heldout: np.ndarray, vocab: int) -> float:
    """Held-out loss (nats/token) of the best context-free model: add-one smoothed training frequencies."""
    p = (np.bincount(train_tokens, minlength=vocab) + 1) / (len(train_tokens) + vocab)
    return float(-np.log(p[heldout]).mean())


def metric(record, task, name):
    return next(m for m in record["metrics"] if m["task"] == task and m["metric"] == name)


def test_pretraining_brings_heldout_loss_well_below_the_unigram_entropy(store, ctx):
    rec = train(PT, store, recipe=RECIPE, progress=False)
    loss = metric(rec, "general_text", "loss")["value"]
    unigram = unigram_cross_entropy(ctx.general_train, ctx.general_heldout[:8193], ctx.tok.get_vocab_size())
    assert loss < unigram - 1.0, (loss, unigram)
    assert metric(rec, "general_text", "ppl")["value"] == pytest.approx(math.exp(loss), rel=1e-5)
    log = json.loads((run_dir(store, rec_config(rec), 0) / "train_log.json").read_text())
    assert log["history"][-1]["loss"] < log["history"][0]["loss"] - 2.0


def rec_config(rec):
    from dynsim.config import parse_config
    return parse_config(rec["config"])


def test_records_follow_the_result_schema(store):
    rec = train(PT, store, recipe=RECIPE, progress=False)
    assert set(rec) == {"schema", "config", "seed", "metrics", "tasks", "timings", "provenance"}
    assert rec["schema"] == "dynsim.result/1" and rec["config"] == "0.2M-600KT" and rec["seed"] == 0
    assert {(m["task"], m["metric"]) for m in rec["metrics"]} == {
        ("general_text", "loss"), ("general_text", "ppl"), ("domain_text", "loss"), ("domain_text", "ppl"),
        ("hellaswag_like", "0shot_acc")}
    assert rec["tasks"]["hellaswag_like"] == {"kind": "upstream", "chance": 25.0, "n_items": 100}
    assert rec["timings"]["pt_s"] > 0 and "eval_s" in rec["timings"]
    prov = rec["provenance"]
    assert {"code_version", "data_hash", "recipe", "torch"} <= set(prov) and prov["recipe"]["data"]["general_corpus"] == "sample"
    path = run_dir(store, rec_config(rec), 0) / "result.json"
    assert json.loads(path.read_text()) == rec
    assert not list(path.parent.glob("*.tmp"))  # atomic write leaves no temp files behind
    from dynsim.results import from_records  # the lead's reader accepts it
    ds = from_records([store])
    assert "general_text" in ds.tasks.values


def answered_share(model, ctx, task, n=50):
    """Share of greedy completions that end in a readable '#### <integer>' answer."""
    items = tasks.make_items(task, "eval", n)
    outs = model.generate([ctx.tok.encode(it.prompt).ids for it in items], 96, ctx.eos_id, autocast=ctx.autocast)
    return sum(tasks.extract_answer(t) is not None for t in ctx.tok.decode_batch(outs)) / n


def test_sft_teaches_the_answer_format_and_records_downstream_metrics(store, ctx):
    rec = train(SFT, store, recipe=RECIPE, progress=False)
    base = load_model(run_dir(store, rec_config(rec).parent(), 0) / "model.pt", ctx)
    sft = load_model(run_dir(store, rec_config(rec), 0) / "model.pt", ctx)
    assert answered_share(base, ctx, "arith") < 0.2  # a pretrained model rambles on
    assert answered_share(sft, ctx, "arith") > 0.8
    for task in tasks.GENERATORS:
        for name in ("greedy_pass@1", "maj@4", "pass@4"):
            m = metric(rec, task, name)
            assert m["n_items"] == 100 and m["value"] == 100 * m["n_correct"] / 100
        assert metric(rec, task, "pass@4")["n_correct"] >= metric(rec, task, "maj@4")["n_correct"]
    assert rec["tasks"]["yesno"] == {"kind": "OOD", "chance": 50.0, "n_items": 100}
    assert rec["tasks"]["arith"]["kind"] == "ID" and rec["tasks"]["hellaswag_like"]["chance"] == 25.0
    assert set(rec["timings"]) == {"pt_s", "sft_s", "eval_s"}


@pytest.mark.slow
def test_sft_lifts_in_domain_accuracy_above_the_base_model(store, ctx):
    rec = train(SLOW_SFT, store, recipe=RECIPE, progress=False)
    base = load_model(run_dir(store, rec_config(rec).parent(), 0) / "model.pt", ctx)
    base_metrics = evaluate.downstream(base, ctx.tok, "arith", 100, 0, ctx.hp["eval"], 0, ctx.autocast)
    sft = metric(rec, "arith", "greedy_pass@1")
    assert sft["value"] >= base_metrics[0]["value"] + 20, (sft, base_metrics)


def test_reusing_a_finished_prefix_trains_only_the_new_stage(store):
    train(SFT, store, recipe=RECIPE, progress=False)
    before = {p: p.stat().st_mtime_ns for p in Path(store).rglob("model.pt")}
    train(SFT, store, recipe=RECIPE, progress=False)  # nothing to do: returns the stored record
    assert {p: p.stat().st_mtime_ns for p in Path(store).rglob("model.pt")} == before


def test_a_checkpoint_trained_with_another_recipe_is_refused(store):
    train(PT, store, recipe=RECIPE, progress=False)
    other = {**RECIPE, "pt": {"lr": 1e-3}}
    with pytest.raises(ValueError, match="another recipe"):
        train(PT + "-100ep1", store, recipe=other, progress=False)
    from dynsim.config import parse_config
    assert not run_dir(store, parse_config(PT + "-100ep1"), 0).parent.exists()  # the failed stage left no empty folder


def test_bad_inputs_raise_one_line_errors(store):
    with pytest.raises(ConfigError):
        train("0.2M-lots", store, progress=False)
    with pytest.raises(FileNotFoundError, match="recipe"):
        train(PT, store, recipe="no_such_recipe", progress=False)
    with pytest.raises(ValueError, match="seed"):
        train(PT, store, seed=-1, progress=False)
    with pytest.raises(FileNotFoundError, match="neither"):
        train("0.1M-0.1MT", store / "x", recipe={"data": {"general_corpus": "/no/such/file.txt"}}, progress=False)


# -- kill and resume -------------------------------------------------------------------------------------
SCRIPT = ("import json, sys; from train_runs.train import train; "
          "train(sys.argv[1], sys.argv[2], recipe=json.loads(sys.argv[3]), progress=False)")


def start(name, out, recipe):
    return subprocess.Popen([sys.executable, "-c", SCRIPT, name, str(out), json.dumps(recipe)],
                            cwd=data.REPO, env=os.environ.copy(), stderr=subprocess.PIPE, text=True)


def test_a_sigkilled_run_resumes_and_matches_an_uninterrupted_run(cache, tmp_path):
    name, recipe = "0.1M-0.2MT", {**RECIPE, "run": {"checkpoint_every": 10}}  # 49 steps
    here = tmp_path / "killed" / "0.1M-200KT" / "seed0"
    proc = start(name, tmp_path / "killed", recipe)
    # Kill the moment the first checkpoint (step 10 of 49) appears: mid-stage for sure. The earlier version slept
    # 0.2 s first and allowed 180 s to the first checkpoint: both races on a loaded 2-core machine (this test took
    # 22 min wall there once). The exact comparison below has never been seen to differ.
    deadline = time.time() + 900
    while not (here / "resume.pt").exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, "no checkpoint within 900 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (here / "model.pt").exists(), "the run finished before it was killed: nothing was tested"
    killed_at = torch.load(here / "resume.pt", weights_only=False)["step"]
    assert 0 < killed_at < 49

    for out in (tmp_path / "killed", tmp_path / "clean"):  # resume the killed one; run a fresh one through
        p = start(name, out, recipe)
        assert p.wait() == 0, p.stderr.read()
    log = json.loads((here / "train_log.json").read_text())
    assert log["resumed_from"] == killed_at > 0
    a = json.loads((here / "result.json").read_text())
    b = json.loads((tmp_path / "clean" / "0.1M-200KT" / "seed0" / "result.json").read_text())
    assert a["metrics"] == b["metrics"]  # exact: batches are a function of the step, CPU kernels deterministic
    wa = torch.load(here / "model.pt", weights_only=False)["model"]
    wb = torch.load(tmp_path / "clean" / "0.1M-200KT" / "seed0" / "model.pt", weights_only=False)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


# -- schedules ---------------------------------------------------------------------------------------------
def test_lr_schedules():
    lrs = [stages.cosine_lr(s, 100, 1.0, 10, 0.1) for s in range(100)]
    assert lrs[9] == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.1, abs=1e-3) and lrs[0] < 0.2
    short = [stages.wsd_lr(s, 100, 1.0, 10, 0.0, 0.2) for s in range(100)]
    long = [stages.wsd_lr(s, 300, 1.0, 10, 0.0, 0.2) for s in range(300)]
    assert short[:80] == long[:80]  # the stable phase does not depend on the budget: branchable
    assert short[80] < 1.0 and short[-1] == pytest.approx(0.0)


def test_wsd_budget_sweep_branches_from_the_shared_stable_phase(cache, tmp_path):
    recipe = {**RECIPE, "pt": {"schedule": "wsd", "warmup_steps": 5, "decay_frac": 0.2, "stable_every": 10}}
    # 0.15MT = 1172 sequences = 37 steps of 32, decaying from step 30; it saves stable states at 10, 20, 30
    train("0.1M-0.15MT", tmp_path / "sweep", recipe=recipe, progress=False)
    assert (tmp_path / "sweep" / "_wsd_stable").exists()
    long = train("0.1M-0.2MT", tmp_path / "sweep", recipe=recipe, progress=False)  # 49 steps, decays from 39
    log = json.loads((tmp_path / "sweep" / "0.1M-200KT" / "seed0" / "train_log.json").read_text())
    assert log["resumed_from"] == 30  # started from the shorter run's last stable state
    alone = train("0.1M-0.2MT", tmp_path / "alone", recipe=recipe, progress=False)
    assert long["metrics"] == alone["metrics"]  # branching changes nothing but the work done


# -- RL -------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_grpo_raises_a_toy_reward(store, ctx):
    """Sanity check of the GRPO machinery: reward 1 for an even final answer must rise within 30 steps."""
    rec = train(SLOW_SFT, store, recipe=RECIPE, progress=False)
    model = load_model(run_dir(store, rec_config(rec), 0) / "model.pt", ctx)
    ref = load_model(run_dir(store, rec_config(rec), 0) / "model.pt", ctx).requires_grad_(False)
    prompts = tasks.make_mixture({"arith": 1}, "train", 480, 0, "toy")
    hp = {**ctx.hp["rl"], "lr": 1e-3, "prompts_per_step": 16, "group_size": 8, "kl_weight": 0.0, "max_new_tokens": 40}

    def even(text, item):
        a = tasks.extract_answer(text)
        return float(a is not None and a % 2 == 0)
    fn = stages.grpo_batches(model, ref, ctx.tok, prompts, np.arange(480), hp, ctx.eos_id, 0, ctx.device,
                             ctx.autocast, reward_fn=even)
    loop = stages.Loop("rl", 30, fn, lambda s: hp["lr"], hp, Path(store) / "toy_resume.pt", log_every=1)
    hist = stages.run_loop(model, loop)["history"]
    first, last = np.mean([h["reward"] for h in hist[:5]]), np.mean([h["reward"] for h in hist[-5:]])
    assert last > first + 0.15, (first, last)


@pytest.mark.slow
def test_rl_moves_the_policy_without_lowering_heldout_accuracy(store):
    """The recipe's RL on the real 0/1 reward: the policy moves off the SFT model but stays near it, the training
    reward does not collapse, and held-out ID accuracy is not lowered.

    Held-out accuracy is read as maj@k, the vote of k samples: greedy decoding of a 0.3M model flips on near-ties
    (on seed 0, three runs of this recipe moved greedy arith by -8 to -17 points and the ID mean of maj@4 by -0.7
    to +2.3), and a trajectory differs between CPUs. Over ten runs (4 seeds) at this recipe the ID mean of maj@4
    moved -1.7..+3.3 points; the 1e-4 learning rate the recipe used before lowered it by 7.7 on one seed of two,
    which this test fails (train_runs/README.md). That GRPO learns a reward is test_grpo_raises_a_toy_reward's."""
    sft = train(SLOW_SFT, store, recipe=RECIPE, progress=False)
    # 640 prompts = 40 GRPO steps of 16 x 8 samples at the recipe's settings; every step logged
    rl = train(SLOW_SFT + "-640ep1", store, recipe={**RECIPE, "run": {**RECIPE["run"], "log_every": 1}}, progress=False)
    hist = json.loads((run_dir(store, rec_config(rl), 0) / "train_log.json").read_text())["history"]
    kl = np.mean([h["kl"] for h in hist[-5:]])
    assert 1e-3 < kl < 0.03, kl  # moved (lr 2e-5 once left it at ~0.001/token), but near the SFT model
    rewards = [h["reward"] for h in hist]
    q = max(1, len(rewards) // 4)
    # no collapse: a lost answer format takes the reward (~0.2) to 0; quarters moved -0.02..+0.03 at this recipe
    assert np.mean(rewards[-q:]) > np.mean(rewards[:q]) - 0.05, rewards
    maj = f"maj@{RECIPE['eval']['k']}"
    before, after = (np.mean([metric(r, t, maj)["value"] for t in tasks.ID_TASKS]) for r in (sft, rl))
    assert after >= before - 5, (before, after)  # 5 points of a 300-item mean: ~2 s.e. unpaired


def test_a_recipe_can_extend_another(tmp_path):
    quick, full = load_recipe("quick"), load_recipe()
    assert quick["eval"]["n_items"] == 50 and quick["eval"]["k"] == 4 and quick["run"]["threads"] == 1
    assert quick["eval"]["max_new_tokens"] == full["eval"]["max_new_tokens"]  # untouched settings come from the base
    assert {k: v for k, v in quick.items() if k not in ("eval", "run")} == {k: v for k, v in full.items() if k not in ("eval", "run")}
    (tmp_path / "mine.toml").write_text('extends = "quick"\n[rl]\nlr = 0.5\n')
    mine = load_recipe(tmp_path / "mine.toml")
    assert mine["rl"]["lr"] == 0.5 and mine["rl"]["kl_weight"] == full["rl"]["kl_weight"] and mine["eval"]["k"] == 4
    (tmp_path / "bad.toml").write_text('extends = "no_such_base"\n')
    with pytest.raises(FileNotFoundError, match="no_such_base"):
        load_recipe(tmp_path / "bad.toml")


def test_size_tables_apply_by_size_and_a_callers_override_wins(tmp_path, monkeypatch):
    from train_runs import recipe as recipe_module
    # a copy of the recipe folder whose default recipe has size tables (the shipped one has none at present)
    for f in recipe_module.RECIPES.glob("*.toml"):
        (tmp_path / f.name).write_text(f.read_text())
    with open(tmp_path / "miniature.toml", "a") as f:
        f.write('\n[size."0.3M".rl]\nlr = 1e-4\nmix = { arith = 0.5, check = 0.5 }\n[size."1M".rl]\nlr = 5e-5\n')
    monkeypatch.setattr(recipe_module, "RECIPES", tmp_path)
    small, large, larger = (load_recipe(None, n) for n in (100_000, 300_000, 2_000_000))
    assert small["rl"]["lr"] == 3e-5 and "check" not in small["rl"]["mix"]  # below every table: the [rl] table
    assert large["rl"]["lr"] == 1e-4 and large["rl"]["mix"] == {"arith": 0.5, "check": 0.5}  # a mix is replaced whole
    assert larger["rl"]["lr"] == 5e-5 and "size" not in larger  # the largest table that fits wins
    assert large["rl"]["kl_weight"] == small["rl"]["kl_weight"]  # a size table changes only what it names
    assert load_recipe({"rl": {"lr": 7e-5}}, 300_000)["rl"]["lr"] == 7e-5  # the caller's override beats the file's size table
    mine = load_recipe({"size": {"0.2M": {"rl": {"lr": 2e-5}}}}, 300_000)  # and the caller's own size tables beat both
    assert mine["rl"]["lr"] == 2e-5 and "size" not in mine
    assert load_recipe("quick", 300_000)["rl"]["lr"] == 1e-4  # a recipe extending the default inherits its tables
