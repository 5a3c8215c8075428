"""Wall-time estimate of a study on the 2-core dev machine, from throughputs measured there (not a test).

    .venv/bin/python bench/estimate_study.py studies/mini_evolm.toml [studies/mini_evolm_seed1.toml ...]

Per node: training time from its FLOPs (6ND, as `dynsim sweep plan`) at a measured per-job rate, plus evaluation;
then a list schedule of the stage tree on `max_parallel` = 2 slots (a node starts when its parent is done, longest
remaining path first). Two regimes: "loaded" = the rates measured here while other work ran (1 thread per job);
"idle" = 4.5x faster (miniature.toml: 35k tokens/s at 0.2M on 1 thread = 4.2e10 FLOP/s vs 9.3e9 loaded).
Measured inputs (result.json timings of earlier runs on this machine, 1 thread, loaded):
  PT   0.1M-1MT warmup-cosine, WordNet: 64.8 s                     -> 9.26e9 FLOP/s
  SFT  0.3M 4Kep2 (320KT at 40 tokens/example) 249 s vs PT 600KT 277 s in the same store -> 1.69x slower per token
  RL   0.3M 640ep1 (16 prompts x 8 samples, 80 new tokens) 831 s -> 2815 PT-equivalent tokens per prompt-epoch
  eval 0.1M n_items=50, k=4 (14 generation batches) 33.3 s incl. 4.7 s upstream -> 2.04 s per batch;
       upstream (cloze 200, 16K text tokens) 4.6 s -> x2.5 for cloze 500
Eval is scaled linearly with parameters (conservative: generation at 0.1M is overhead-bound); downstream eval with
k = 0 is 7 greedy batches (7 tasks x <= 256 items).
Per-job overhead 23 s (process start, imports, data context, idle slots): `dynsim sweep submit studies/mini.toml`
took 302 s wall on 2 slots = 604 slot-s for 15 jobs whose records account for 257.5 s of training + evaluation
(train() itself, wall_s in the submitit results, 369 s: 7.4 s/job of context building).
"""
import heapq
import sys
from dynsim.study import load_study
from dynsim.tree import tree_for
FLOPS = 6 * 1e5 * 1e6 / 64.8      # measured: 0.1M-1MT cosine PT, 64.8 s, 1 thread, loaded (/tmp/sw/wsd3)
SFT_SLOW = (600e3 / 276.935) / (320e3 / 249.17)   # measured 0.3M: PT 600KT 277 s vs SFT 4Kep2x40 = 320KT 249 s
RL_KT = 831.515 * (600e3 / 276.935) / 640        # PT-equivalent tokens per RL prompt-epoch (0.3M, 640ep1: 831 s)
BATCH_S = (33.272 - 4.68) / 14                  # measured 0.1M: n=50,k=4 eval = 14 generation batches, 33.3 s - upstream 4.7 s
OVERHEAD_S = (2 * 302 - 257.5) / 15             # measured: studies/mini.toml sweep, see above
UP_S = 4.6 * (500 / 200)                        # measured 0.1M upstream eval 4.5-4.7 s at cloze 200; ours cloze 500
def cost(n, speed=1.0):
    N = n.config.size
    if n.stage in ("pt", "cpt"): t = 6 * N * n.tokens / FLOPS
    elif n.stage == "sft": t = 6 * N * n.tokens * SFT_SLOW / FLOPS
    else: t = 6 * N * n.config.rl_examples * n.config.rl_epochs * RL_KT / FLOPS
    ev = UP_S * N / 1e5 + (7 * BATCH_S * N / 1e5 if n.config.has_sft else 0)   # k=0: 7 greedy batches
    return (t + ev) / speed + OVERHEAD_S, t / speed, ev / speed

def main(path):
  study = load_study(path); nodes = tree_for(study)
  print(path)
  for speed, label in ((1.0, "loaded (measured rates)"), (4.5, "idle (x4.5: 35k tok/s at 0.2M, 1 thread)")):
      c = {n.config: cost(n, speed) for n in nodes}
      tot = sum(v[0] for v in c.values()); tr = sum(v[1] for v in c.values())
      by = {}
      for n in nodes: by[n.stage] = by.get(n.stage, 0) + c[n.config][0]
      # list schedule: 2 slots, a node ready when its parent is done, longest-remaining-path first
      kids = {}
      for n in nodes: kids.setdefault(n.parent, []).append(n)
      def path(n): return c[n.config][0] + max([path(k) for k in kids.get(n.config, [])] or [0])
      ready = [(-path(n), i, n) for i, n in enumerate(nodes) if n.parent is None]; heapq.heapify(ready)
      running, t, i = [], 0.0, len(nodes)
      seeds = len(study.seeds)
      while ready or running:
          while ready and len(running) < 2:
              _, _, n = heapq.heappop(ready); heapq.heappush(running, (t + c[n.config][0] * seeds, id(n), n))
          t, _, n = heapq.heappop(running)
          for k in kids.get(n.config, []): i += 1; heapq.heappush(ready, (-path(k), i, k))
      crit = max(path(n) for n in nodes if n.parent is None)
      print(f"{label}: job-seconds {tot*seeds:.0f} (train {tr*seeds:.0f}, eval + per-job overhead {(tot-tr)*seeds:.0f}); by stage "
            + ", ".join(f"{k} {v*seeds:.0f}" for k, v in by.items())
            + f"; critical path {crit:.0f} s; 2-slot schedule {t:.0f} s = {t/3600:.2f} h")
  print(f"rates: PT {FLOPS:.3g} FLOP/s, SFT {SFT_SLOW:.2f}x slower/token, RL {RL_KT:.0f} PT-tokens/prompt-epoch, gen batch {BATCH_S:.2f} s, upstream {UP_S:.1f} s (0.1M), per-job overhead {OVERHEAD_S:.1f} s")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        main(arg)
