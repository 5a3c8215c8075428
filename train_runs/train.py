"""The run store: `train(config, out_dir)` trains whatever stages of a run are missing and records results.

Layout (one folder per stage config of the lineage, one per seed):
    out_dir/<config name>/seed<k>/model.pt      final weights of that stage (+ model shape, recipe hash)
    out_dir/<config name>/seed<k>/resume.pt     last in-stage checkpoint; removed when the stage finishes
    out_dir/<config name>/seed<k>/train_log.json loss / reward history of the stage
    out_dir/<config name>/seed<k>/result.json   the `dynsim.result/1` record (written atomically)
    out_dir/_wsd_stable/<size>-seed<k>-<hash>/step<N>.pt   stable-phase states shared by WSD budget sweeps

`0.3M-4MT-1+3MT-2Kep1` trains PT (`0.3M-4MT`), CPT and SFT, each from its parent's model.pt, and evaluates every
stage (upstream always; SFT and RL also downstream). A second call with `...-2Kep1-2Kep4` reuses all three and
trains only RL. A killed run resumes from its last resume.pt and replays the same batches (tests prove it).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dynsim.config import STAGE, STAGES, RunConfig, format_size, parse_config
from dynsim.errors import UserError, shown
from dynsim.files import atomic_write_bytes
from dynsim.tree import lineage, run_dir
from train_runs import data, distributed, evaluate, shards, stages, tasks
from train_runs.recipe import RecipeError, load_recipe, recipe_count  # noqa: F401 (RecipeError, load_recipe: train_runs.train's API)
from train_runs.model import GPT, ModelConfig, model_config

SCHEMA = "dynsim.result/1"
STATE_BYTES = 16  # per parameter while training: fp32 weights, gradients and AdamW's two moments
MAX_STEPS = 10_000_000  # optimizer steps in one stage: weeks at the miniature's fastest; more is a typo in a budget


def recipe_hash(hp: dict, stage: str) -> str:
    """What a checkpoint of `stage` depends on: data, model shape, numerics and every stage up to this one
    (so an SFT sweep reuses the PT and CPT checkpoints, but never a checkpoint trained with other settings)."""
    sections = ("data", "model") + STAGES[: STAGES.index(stage) + 1]
    return data.sha(json.dumps({k: hp[k] for k in sections}, sort_keys=True) + f"/autocast_cpu={hp['run']['autocast_cpu']}")


# -- the data every stage of one run shares -----------------------------------------------------------
@dataclass
class Context:
    hp: dict
    seed: int
    device: torch.device
    autocast: bool
    tok: object
    eos_id: int
    general_train: np.ndarray
    general_heldout: np.ndarray
    domain_heldout: np.ndarray
    cloze: list
    data_hash: str  # general corpus + tokenizer + task generators: everything a result depends on
    text_hash: str  # general corpus + tokenizer only: all that pretraining depends on
    code_version: str
    wsd_branches: tuple = ()  # PT token budgets whose WSD decay-start states a stable run must save (sweeps)
    ranks: distributed.Ranks = distributed.Ranks()  # this process's place in a multi-process job
    domain_train: object = None  # CPT's domain tokens from shards ([data] domain_corpus); None: generated per run

    def stage_data_hash(self, stage: str) -> str:
        return self.text_hash if stage == "pt" else self.data_hash


def code_version() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=data.REPO, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "train_runs"], cwd=data.REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from dynsim import __version__
        return f"dynsim {__version__}"


def make_context(hp: dict, seed: int, ranks: distributed.Ranks = distributed.Ranks()) -> Context:
    run = hp["run"]
    if run["device"] == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(run["device"])
    device = distributed.device_for(ranks, device)
    autocast = device.type == "cuda" or bool(run["autocast_cpu"])
    source, vocab = hp["data"]["general_corpus"], hp["data"]["vocab_size"]
    if shards.is_shard_dir(source):  # `dynsim tokenize`d: memory-mapped, with its own tokenizer
        general = shards.Shards.open(source)
        tok = general.tokenizer()
        if tok.get_vocab_size() != vocab:
            raise UserError(f"the shards in {shown(source)} have a {tok.get_vocab_size()}-token vocabulary and the "
                            f"recipe's [data] vocab_size is {vocab}: set vocab_size = {tok.get_vocab_size()}")
        general_train, general_heldout = general.tokens("train"), general.tokens("heldout")
        eval_docs, corpus_hash = general.heldout_documents(), general.hash
    else:
        corpus = data.load_general_corpus(source)
        tok = data.get_tokenizer(corpus, vocab)
        general_train = data.cached_tokens(tok, corpus.train_docs, "general-train")
        general_heldout = data.cached_tokens(tok, corpus.eval_docs, "general-heldout")
        eval_docs, corpus_hash = corpus.eval_docs, corpus.hash
    text_tokens, domain_source = hp["eval"]["text_tokens"], hp["data"]["domain_corpus"]
    if domain_source:  # CPT's domain share from a tokenized corpus instead of generated worked solutions
        domain = shards.Shards.open(domain_source)
        if data.tokenizer_hash(domain.tokenizer()) != data.tokenizer_hash(tok):
            raise UserError(f"the domain shards in {shown(domain_source)} were tokenized with another tokenizer than "
                            "the general corpus: tokenize both with the same one (dynsim tokenize --tokenizer)")
        domain_train, domain_heldout = domain.tokens("train"), np.asarray(domain.tokens("heldout")[:text_tokens + 1])
        domain_hashes = (domain.hash,)
    else:
        domain_train, domain_heldout = None, data.domain_tokens(tok, hp["data"]["domain_mix"], text_tokens + 1, "eval")
        domain_hashes = ()  # the task generators' version covers generated domain text
    cloze = evaluate.cloze_items(eval_docs, hp["eval"]["cloze_items"])
    text_hash = data.sha(corpus_hash, data.tokenizer_hash(tok))
    data_hash = data.sha(text_hash, tasks.TASKS_VERSION, *domain_hashes)
    return Context(hp, seed, device, autocast, tok, tok.token_to_id(data.EOS), general_train, general_heldout,
                   domain_heldout, cloze, data_hash, text_hash, code_version(), ranks=ranks, domain_train=domain_train)


# -- stages ------------------------------------------------------------------------------------------

# -- what this machine can train ----------------------------------------------------------------------
def check_runnable(todo: list[RunConfig], hp: dict) -> None:
    """Refuse, before any data is read, stages this machine cannot train: a model whose weights, gradients and
    optimizer state (STATE_BYTES a parameter) exceed its memory, a size the miniature has no shape for, a stage
    of more than MAX_STEPS optimizer steps (a budget off by a few units), or more threads than cores (OpenMP
    threads beyond the cores spin-wait: the run crawls)."""
    if not todo:
        return
    threads = hp["run"]["threads"]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if threads > cores:
        raise UserError(f"the recipe's [run] threads = {threads}, and this machine has {cores} core(s): lower it "
                        "(0 = torch's default, all cores)")
    config = todo[-1]
    need, have = config.size * STATE_BYTES, machine_memory(hp)
    if need > have:
        raise UserError(f"{config.name}: training a {format_size(config.size)} model needs about "
                        f"{need / 2**30:,.3g} GiB for weights, gradients and optimizer state ({STATE_BYTES} bytes a "
                        f"parameter); this machine has {have / 2**30:,.3g} GiB")
    model_config(config, hp)  # a size without a model shape
    for c in todo:
        steps = stage_steps(c, hp)
        if steps > MAX_STEPS:
            raise UserError(f"{c.name}: its {c.stage().upper()} stage would take {steps:.3g} optimizer steps; the "
                            f"limit is {MAX_STEPS:,} (is the budget meant?)")


def machine_memory(hp: dict) -> int:
    """Bytes the model can occupy: the RAM (it is built on the CPU), and on a GPU that GPU's memory too."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    device = hp["run"]["device"]
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return min(ram, torch.cuda.get_device_properties(0).total_memory)
    return ram


def stage_steps(config: RunConfig, hp: dict) -> int:
    """Optimizer steps of the last stage of `config`: its tokens or examples over the recipe's batch (as
    stage_loop counts them)."""
    stage, T = config.stage(), recipe_count(hp, "data", "block_size")
    per_step = recipe_count(hp, stage, "prompts_per_step" if "prompts_per_step" in hp[stage] else "batch_size")
    if stage == "pt":
        items = stages.n_sequences(config.pretrain, T)
    elif STAGE[stage].budget == "mix":
        replay, domain = STAGE[stage].counts(config)
        items = round(replay / T) + stages.n_sequences(domain, T)
    else:
        examples, epochs = STAGE[stage].counts(config)
        items = examples * epochs
    return math.ceil(items / per_step)


def load_model(path: Path, ctx: Context) -> GPT:
    state = torch.load(path, map_location=ctx.device, weights_only=False)
    stage = parse_config(state["config"]).stage()
    if state["recipe_hash"] != recipe_hash(ctx.hp, stage) or state["data_hash"] != ctx.stage_data_hash(stage):
        raise UserError(f"{path} was trained with another recipe or data; use a different out_dir for this recipe")
    model = GPT(ModelConfig(**state["model_config"])).to(ctx.device)
    model.load_state_dict(state["model"])
    return model.eval()


def stage_loop(config: RunConfig, model: GPT, ctx: Context, out_dir: Path, here: Path, net=None) -> stages.Loop:
    """The stage-specific part: batches, step count and LR schedule of the last stage of `config` (LOOPS).
    net: the module training forwards go through (the model, or its DDP / FSDP2 wrapper in a multi-process job)."""
    common = dict(resume_path=here / "resume.pt", checkpoint_every=ctx.hp["run"]["checkpoint_every"],
                  log_every=ctx.hp["run"]["log_every"])
    return LOOPS[config.stage()](config, model, model if net is None else net, ctx, out_dir, common)


def general_stream(ctx: Context) -> data.TokenStream:
    """The general corpus, from a seeded offset: PT trains on it and CPT replays it."""
    offset = int(np.random.default_rng([ctx.seed, 11]).integers(1 << 30))
    return data.TokenStream(ctx.general_train, ctx.hp["data"]["block_size"], offset=offset)


def pt_loop(config: RunConfig, model: GPT, net, ctx: Context, out_dir: Path, common: dict) -> stages.Loop:
    p, T, dev, ac = ctx.hp["pt"], ctx.hp["data"]["block_size"], ctx.device, ctx.autocast
    n_seqs = stages.n_sequences(config.pretrain, T)
    total = math.ceil(n_seqs / p["batch_size"])
    planned = math.ceil(stages.n_sequences(config.pretrain_schedule or config.pretrain, T) / p["batch_size"])
    loop = stages.Loop("pt", total, stages.pt_batches(net, general_stream(ctx), n_seqs, p["batch_size"], dev, ac),
                       lambda s: stages.stage_lr(p, s, planned), p, **common)
    if p["schedule"] == "wsd":
        add_wsd_branching(loop, config, ctx, out_dir, planned)
    return loop


def cpt_loop(config: RunConfig, model: GPT, net, ctx: Context, out_dir: Path, common: dict) -> stages.Loop:
    p, seed, hp, T, dev, ac = ctx.hp["cpt"], ctx.seed, ctx.hp, ctx.hp["data"]["block_size"], ctx.device, ctx.autocast
    n_replay = round(config.cpt_replay / T)
    n_domain = stages.n_sequences(config.cpt_domain, T)
    if ctx.domain_train is not None:
        domain = data.TokenStream(ctx.domain_train, T, offset=int(np.random.default_rng([seed, 13]).integers(1 << 30)))
    else:
        domain = data.TokenStream(data.domain_tokens(ctx.tok, hp["data"]["domain_mix"], n_domain * T + 1, "train",
                                                     seed), T)
    source = stages.cpt_schedule(n_replay, n_domain, seed)
    total = math.ceil(len(source) / p["batch_size"])
    replay_start = stages.n_sequences(config.pretrain, T)  # replay continues the PT stream where PT stopped
    return stages.Loop("cpt", total, stages.cpt_batches(net, general_stream(ctx), replay_start, domain, source,
                                                        p["batch_size"], dev, ac),
                       lambda s: stages.stage_lr(p, s, total), p, **common)


def sft_loop(config: RunConfig, model: GPT, net, ctx: Context, out_dir: Path, common: dict) -> stages.Loop:
    p, seed, dev, ac = ctx.hp["sft"], ctx.seed, ctx.device, ctx.autocast
    items = tasks.make_mixture(p["mix"], "train", config.sft_examples, seed, stream="sft")
    encoded = [stages.encode_example(ctx.tok, it, ctx.eos_id, model.cfg.max_seq_len) for it in items]
    order = stages.epoch_order(len(items), config.sft_epochs, seed, "sft")
    total = math.ceil(len(order) / p["batch_size"])
    return stages.Loop("sft", total, stages.sft_batches(net, encoded, order, p["batch_size"], ctx.eos_id, dev, ac),
                       lambda s: stages.stage_lr(p, s, total), p, **common)


def rl_loop(config: RunConfig, model: GPT, net, ctx: Context, out_dir: Path, common: dict) -> stages.Loop:
    p, seed, dev, ac = ctx.hp["rl"], ctx.seed, ctx.device, ctx.autocast
    ref = load_model(run_dir(out_dir, config.parent(), seed) / "model.pt", ctx).requires_grad_(False)  # KL anchor
    prompts = tasks.make_mixture(p["mix"], "train", config.rl_examples, seed, stream="rl")
    order = stages.epoch_order(len(prompts), config.rl_epochs, seed, "rl")
    total = math.ceil(len(order) / p["prompts_per_step"])
    return stages.Loop("rl", total, stages.grpo_batches(model, ref, ctx.tok, prompts, order, p, ctx.eos_id, seed, dev, ac,
                                                           net=net),
                       lambda s: stages.stage_lr(p, s, total), p, **common)


LOOPS = {"pt": pt_loop, "cpt": cpt_loop, "sft": sft_loop, "rl": rl_loop}  # each stage's (config.STAGES) loop
assert set(LOOPS) == set(STAGES), "a stage without a training loop"


def add_wsd_branching(loop: stages.Loop, config: RunConfig, ctx: Context, out_dir: Path, planned: int) -> None:
    """WSD runs share one stable trajectory: save it every `stable_every` steps and start from the latest saved
    state that lies inside this run's own stable phase (the decay branch then starts at its decay step)."""
    p = ctx.hp["pt"]
    shared = Path(out_dir) / "_wsd_stable" / f"{format_size(config.size)}-seed{ctx.seed}-{recipe_hash(ctx.hp, 'pt')}"
    shared.mkdir(parents=True, exist_ok=True)
    decay_start = stages.wsd_decay_start(planned, p["decay_frac"])
    last = min(decay_start, loop.total_steps)
    every = p.get("stable_every", 500)
    loop.save_at = {s: shared / f"step{s}.pt" for s in range(every, last + 1, every)}
    loop.save_at[last] = shared / f"step{last}.pt"
    T, B = ctx.hp["data"]["block_size"], p["batch_size"]
    for budget in ctx.wsd_branches:  # a sweep's stable run: the exact branch points of its shorter budgets
        s = stages.wsd_decay_start(math.ceil(stages.n_sequences(budget, T) / B), p["decay_frac"])
        if 0 < s <= last:
            loop.save_at[s] = shared / f"step{s}.pt"
    saved = sorted(int(f.stem[4:]) for f in shared.glob("step*.pt") if int(f.stem[4:]) <= last)
    if saved and not loop.resume_path.exists():
        state = torch.load(shared / f"step{saved[-1]}.pt", map_location=ctx.device, weights_only=False)
        state["history"], state["elapsed_s"] = list(state["history"]), 0.0  # time spent here, not in the donor run
        loop.start_state = state
        for s in [s for s in loop.save_at if s <= saved[-1]]:
            del loop.save_at[s]


def train_stage(config: RunConfig, ctx: Context, out_dir: Path, bar) -> None:
    """Train the last stage of `config` from its parent's model.pt. In a job of several processes every rank runs
    this; rank 0 alone writes the log and the model."""
    here, ranks = run_dir(out_dir, config, ctx.seed), ctx.ranks
    if ranks.main:
        here.mkdir(parents=True, exist_ok=True)
    parent = config.parent()
    if parent is None:
        torch.manual_seed(ctx.seed)  # every rank builds the same initial weights
        model = GPT(model_config(config, ctx.hp)).to(ctx.device)
    else:
        model = load_model(run_dir(out_dir, parent, ctx.seed) / "model.pt", ctx)
    run = ctx.hp["run"]
    net = distributed.wrap(model, ranks, run["parallel"])
    loop = stage_loop(config, model, ctx, out_dir, here, net)
    result = stages.run_loop(model, loop, bar, net, stages.Split(ranks.rank, ranks.world, run["micro_batch"]))
    weights = distributed.model_state(model)  # every rank: FSDP2 gathers the shards to rank 0
    if ranks.main:
        log = {"config": config.name, "stage": config.stage(), "steps": loop.total_steps, "processes": ranks.world,
               **result}
        atomic_write_bytes(here / "train_log.json", json.dumps(log, indent=1).encode())
        stages.atomic_torch_save({"model": weights, "model_config": model.cfg.to_dict(), "config": config.name,
                                  "recipe_hash": recipe_hash(ctx.hp, config.stage()),
                                  "data_hash": ctx.stage_data_hash(config.stage()),
                                  "elapsed_s": result["elapsed_s"], "steps": loop.total_steps}, here / "model.pt")
        loop.resume_path.unlink(missing_ok=True)
    distributed.barrier(ranks)


# -- evaluation and the record ---------------------------------------------------------------------------
def evaluate_stage(config: RunConfig, ctx: Context, out_dir: Path, bar) -> dict:
    here = run_dir(out_dir, config, ctx.seed)
    model = load_model(here / "model.pt", ctx)
    hp, t0 = ctx.hp["eval"], time.perf_counter()
    downstream = config.post_trained
    job = bar.add_task("EVAL", total=1 + (len(tasks.GENERATORS) if downstream else 0)) if bar else None
    metrics = evaluate.upstream(model, ctx.tok, ctx.general_heldout, ctx.domain_heldout, ctx.cloze, hp,
                                ctx.hp["data"]["block_size"], ctx.autocast)
    n_items = {m["task"]: m["n_items"] for m in metrics if m["task"] == "hellaswag_like"}
    if bar:
        bar.update(job, advance=1)
    if downstream:
        for task in tasks.GENERATORS:
            metrics += evaluate.downstream(model, ctx.tok, task, hp["n_items"], hp["k"], hp, ctx.seed, ctx.autocast)
            n_items[task] = hp["n_items"]
            if bar:
                bar.update(job, advance=1)
    timings = {}
    for c in lineage(config):
        state = torch.load(run_dir(out_dir, c, ctx.seed) / "model.pt", map_location="cpu", weights_only=False)
        timings[f"{c.stage()}_s"] = round(state["elapsed_s"], 3)
    timings["eval_s"] = round(time.perf_counter() - t0, 3)
    record = {
        "schema": SCHEMA, "config": config.name, "seed": ctx.seed,
        "metrics": [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in m.items()} for m in metrics],
        "tasks": evaluate.task_table(n_items),
        "timings": timings,
        "provenance": {"code_version": ctx.code_version, "data_hash": ctx.data_hash, "recipe": ctx.hp,
                       "torch": torch.__version__, "device": str(ctx.device), "n_params": model.n_params(),
                       "model": model.cfg.to_dict(), "general_corpus": ctx.hp["data"]["general_corpus"],
                       "parent": config.parent().name if config.parent() else None},
    }
    atomic_write_bytes(here / "result.json", json.dumps(record, indent=1).encode())
    return record


@contextlib.contextmanager
def _no_empty_folders_on_failure(out_dir: Path, here: list[Path]):
    """A stage that fails (a parent trained with another recipe, an interrupt before its first checkpoint) leaves
    no empty run folder behind, which would look like a run begun: the folders this call made and left empty are
    removed, deepest first. A resume checkpoint keeps its folder."""
    made = {p for h in here for p in (h, h.parent, out_dir) if not p.exists()}
    try:
        yield
    except BaseException:
        for p in sorted(made, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):  # not empty, or never made
                p.rmdir()
        raise


def _progress(enabled: bool):
    if not enabled:
        return contextlib.nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    return Progress(TextColumn("{task.description:>5}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn())


def train(config: RunConfig | str, out_dir: Path | str, seed: int = 0, recipe=None, progress: bool = True,
          wsd_branches=()) -> dict:
    """Train the missing stages of `config` (reusing finished parents in out_dir) and return its result record.

    wsd_branches: PT token budgets (WSD schedule) that will branch off this run's stable phase: their decay-start
    states are saved to out_dir/_wsd_stable/ as well (the sweep's stable node passes every budget of its size)."""
    if isinstance(config, str):
        config = parse_config(config)
    if not isinstance(config, RunConfig):
        raise UserError(f"config must be a RunConfig or a run name, got {type(config).__name__}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed!r}")
    out_dir = Path(out_dir)
    hp = load_recipe(recipe, config.size)  # first: a bad recipe is an error even when the record exists
    final = run_dir(out_dir, config, seed) / "result.json"
    if final.exists():
        return json.loads(final.read_text())
    check_runnable([c for c in lineage(config) if not (run_dir(out_dir, c, seed) / "model.pt").exists()], hp)
    ranks = distributed.Ranks.from_env()
    torch.set_num_threads(hp["run"].get("threads") or _default_threads(ranks))
    ctx = make_context(hp, seed, ranks)
    ctx.wsd_branches = tuple(wsd_branches)
    record = None
    folders = [run_dir(out_dir, c, seed) for c in lineage(config)] if ranks.main else []
    with (distributed.process_group(ranks, ctx.device), _progress(progress and ranks.main) as bar,
          _no_empty_folders_on_failure(out_dir, folders)):
        for c in lineage(config):
            here = run_dir(out_dir, c, seed)
            if not (here / "model.pt").exists():
                train_stage(c, ctx, out_dir, bar)
            if not (here / "result.json").exists() and ranks.main:
                evaluate_stage(c, ctx, out_dir, bar)  # one rank evaluates; the others wait for its record
            distributed.barrier(ranks)
            record = json.loads((here / "result.json").read_text())
    return record


def _default_threads(ranks: distributed.Ranks) -> int:
    """torch's default (every core) for one process; the cores shared out when several ranks share a machine."""
    if ranks.world == 1:
        return torch.get_num_threads()
    local = int(os.environ.get("LOCAL_WORLD_SIZE", ranks.world))
    return max(1, (os.cpu_count() or 1) // local)
