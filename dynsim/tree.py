"""The stage tree of a study: every stage prefix of every run, trained once, parents before children.

A node is the `RunConfig` of one stage prefix (`1B-160BT`, `1B-160BT-8+42BT`, `1B-160BT-8+42BT-100Kep1`, ...),
shared by every run that passes through it: each PT checkpoint is branched into every CPT, each CPT into every
SFT, each SFT into every RL.

With the WSD schedule (warmup-stable-decay), the PT budgets of one model size come from *one* run: a
**stable** node trains the longest budget's warmup and stable phase up to its decay start, saving the state at
every shorter budget's decay start too; each budget D is then a **decay** branch of `decay_frac * D` tokens from
the stable state at `(1 - decay_frac) * D`. The stable node is itself a run config, the un-annealed intermediate
checkpoint `1B-256of320BT` (the checkpoint at 256BT of a run planned for 320BT).

Token counts per node: PT/CPT tokens as named; SFT and RL `examples × epochs × tokens_per_example` (stated in
the study); FLOPs 6·N·D. Light: no torch, no pymc.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

from dynsim.config import STAGE, STAGES, RunConfig

KINDS = ("stable", "decay", *STAGES)


@dataclasses.dataclass(frozen=True)
class Node:
    config: RunConfig
    parent: RunConfig | None  # the node whose checkpoint this one starts from (None: from scratch)
    kind: str  # one of KINDS
    level: int  # depth in the tree: 0 for nodes without a parent
    tokens: int  # tokens this node itself trains
    branches: tuple[int, ...] = ()  # stable nodes: the PT budgets whose decay-start states it saves

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def stage(self) -> str:
        """The training stage (for resources): stable and decay nodes are pretraining."""
        return "pt" if self.kind in ("stable", "decay") else self.kind

    @property
    def flops(self) -> float:
        return 6.0 * self.config.size * self.tokens


def lineage(config: RunConfig) -> list[RunConfig]:
    """[PT config, ..., config]: the stage configs a run passes through."""
    chain = [config]
    while chain[0].parent() is not None:
        chain.insert(0, chain[0].parent())
    return chain


def run_dir(store, config, seed: int) -> Path:
    """Where one stage of a run (a RunConfig or its name) trains and keeps its checkpoint, log and result.json in
    a run store: STORE/NAME/seedS. The trainer, the dispatcher and a user's trainer all read this layout."""
    return Path(store) / (config if isinstance(config, str) else config.name) / f"seed{seed}"


def wsd_stable_tokens(budget: int, decay_frac: float) -> int:
    """Where a WSD run of `budget` tokens leaves its stable phase."""
    return budget - max(1, round(decay_frac * budget))


def stage_tokens(config: RunConfig, tokens_per_example: dict[str, int]) -> int:
    """Tokens the last stage of `config` trains (its whole PT if it is a PT config); tokens_per_example: per
    stage with an example budget (a study's [tokens_per_example]), absent = 0."""
    stage = config.stage()
    return config.pretrain if stage == "pt" else STAGE[stage].tokens(config, tokens_per_example)


def build_tree(runs, *, pt_schedule: str = "wsd", decay_frac: float = 0.2,
               tokens_per_example: dict[str, int] | None = None) -> list[Node]:
    """Nodes for every stage prefix of `runs`, deduplicated, ordered by level (parents first), then by config."""
    configs = {c for run in runs for c in lineage(run)}
    tpe = tokens_per_example or {}
    nodes: dict[RunConfig, Node] = {}
    annealed = defaultdict(set)  # size -> PT budgets that can be WSD branches
    for c in configs:
        if c.stage() == "pt" and c.annealed:
            annealed[c.size].add(c.pretrain)
    stable_of = {}  # size -> stable config
    if pt_schedule == "wsd":
        for size, budgets in annealed.items():
            if len(budgets) < 2:
                continue  # one budget: nothing to share, a plain run
            longest = max(budgets)
            stable = RunConfig(size, wsd_stable_tokens(longest, decay_frac), pretrain_schedule=longest)
            stable_of[size] = stable
            nodes[stable] = Node(stable, None, "stable", 0, stable.pretrain, tuple(sorted(budgets)))
    for c in sorted(configs, key=lambda c: len(lineage(c))):
        if c in nodes:
            continue
        if c.stage() == "pt":
            if c.annealed and c.size in stable_of:
                nodes[c] = Node(c, stable_of[c.size], "decay", 1, c.pretrain - wsd_stable_tokens(c.pretrain, decay_frac))
            else:
                nodes[c] = Node(c, None, "pt", 0, c.pretrain)
        else:
            parent = nodes[c.parent()]
            nodes[c] = Node(c, c.parent(), c.stage(), parent.level + 1, stage_tokens(c, tpe))
    return sorted(nodes.values(), key=lambda n: (n.level, n.config))


def tree_for(study) -> list[Node]:
    return build_tree(study.runs, pt_schedule=study.pt_schedule, decay_frac=study.decay_frac,
                      tokens_per_example=study.tokens_per_example)


def children(nodes: list[Node]) -> dict[RunConfig, list[Node]]:
    out = defaultdict(list)
    for n in nodes:
        if n.parent is not None:
            out[n.parent].append(n)
    return out


def descendants(nodes: list[Node], config: RunConfig) -> list[Node]:
    kids, out, todo = children(nodes), [], [config]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k.config)
    return out


# -- accounting ------------------------------------------------------------------------------------------
def accounting(nodes: list[Node], runs, tokens_per_example: dict[str, int] | None = None) -> dict:
    """Tokens trained by the tree vs the alternatives.

    pt_tree: PT tokens with WSD sharing (stable + decay branches + plain PT runs).
    pt_independent: one warmup-cosine run per PT budget, as EvoLM trained them (sum of the budgets).
    post_pt: CPT + SFT + RL tokens of the tree (each prefix once; EvoLM also branched these from checkpoints).
    no_sharing: every requested run trained from scratch through its whole lineage.
    """
    tpe = tokens_per_example or {}
    pt_nodes = [n for n in nodes if n.stage == "pt"]
    pt_tree = sum(n.tokens for n in pt_nodes)
    pt_independent = sum(n.config.pretrain for n in pt_nodes if n.kind != "stable")
    post = sum(n.tokens for n in nodes if n.stage != "pt")
    no_sharing = sum(stage_tokens(c, tpe) for run in dict.fromkeys(runs) for c in lineage(run))
    flops = lambda sel: sum(n.flops for n in nodes if sel(n))  # noqa: E731
    return {
        "pt_tree": pt_tree, "pt_independent": pt_independent, "pt_ratio": pt_tree / pt_independent,
        "post_pt": post, "tree": pt_tree + post, "evolm": pt_independent + post,
        "total_ratio": (pt_tree + post) / (pt_independent + post),
        "no_sharing": no_sharing, "no_sharing_ratio": (pt_tree + post) / no_sharing,
        "flops_tree": flops(lambda n: True), "flops_pt": flops(lambda n: n.stage == "pt"),
    }


def _tok(n: float) -> str:
    """Tokens to 3 significant digits with a unit: 1.26TT, 350BT, 4KT."""
    n = float(n)
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}T"
    return f"{n:.3g}T"


def format_plan(study, nodes: list[Node], done: dict | None = None) -> str:
    """The `dynsim sweep plan` report: the tree, jobs, tokens/FLOPs per stage, what is already done.

    done: {RunConfig: number of seeds with a result} (omitted: nothing checked)."""
    done = done or {}
    n_seeds = len(study.seeds)
    lines = [f"study {study.name} ({study.path}): {len(study.runs)} requested runs, {len(nodes)} tree nodes x "
             f"{n_seeds} seed(s) = {len(nodes) * n_seeds} jobs, executor {study.executor}, out {study.out}",
             f"PT schedule: {study.pt_schedule}" + (f", decay {study.decay_frac:.0%} of each budget" if
                                                     study.pt_schedule == "wsd" else ""), "",
             f"  {'level':<6}{'kind':<7}{'config':<44}{'tokens':>10}{'FLOPs':>10}  done"]
    for n in nodes:
        indent = "  " * n.level
        extra = f"  (saves decay starts of {', '.join(_tok(b) for b in n.branches)})" if n.kind == "stable" else ""
        lines.append(f"  {n.level:<6}{n.kind:<7}{indent + n.name:<44}{_tok(n.tokens):>10}{n.flops:>10.2e}  "
                     f"{done.get(n.config, 0)}/{n_seeds}{extra}")
    lines += ["", f"  {'stage':<8}{'nodes':>6}{'jobs':>6}{'tokens':>10}{'FLOPs':>10}{'done':>7}"]
    for stage in STAGES:
        sel = [n for n in nodes if n.stage == stage]
        if sel:
            lines.append(f"  {stage:<8}{len(sel):>6}{len(sel) * n_seeds:>6}{_tok(sum(n.tokens for n in sel)):>10}"
                         f"{sum(n.flops for n in sel):>10.2e}{sum(done.get(n.config, 0) for n in sel):>7}")
    lines += ["", f"a job ({study.executor}; [resources]):"]
    lines += [f"  {stage:<8}{study.resources_for(stage).describe()}" for stage in STAGES
              if any(n.stage == stage for n in nodes)]
    a = accounting(nodes, study.runs, study.tokens_per_example)
    lines += ["", "tokens per seed (SFT/RL at the study's tokens_per_example):",
              f"  PT axis: tree + WSD {_tok(a['pt_tree'])} vs independent warmup-cosine runs per budget "
              f"(EvoLM) {_tok(a['pt_independent'])}: {a['pt_ratio']:.3f}x",
              f"  all stages: tree {_tok(a['tree'])} vs EvoLM-style (independent PT, shared later stages) "
              f"{_tok(a['evolm'])}: {a['total_ratio']:.3f}x; vs every run from scratch {_tok(a['no_sharing'])}: "
              f"{a['no_sharing_ratio']:.3f}x",
              f"  FLOPs (6ND): {a['flops_tree']:.3e} per seed, {a['flops_tree'] * n_seeds:.3e} in all"]
    n_done = sum(done.values())
    lines.append(f"done: {n_done}/{len(nodes) * n_seeds} jobs have a result")
    return "\n".join(lines)
