#!/usr/bin/env bash
# The GPU check of issue 20, one script, under ten minutes on one H100/H200 (prints figures; not a test):
#   1. throughput and MFU of the 125M named shape in bf16 (bench/gpu_throughput.py; goal >= 40% MFU),
#      then the 350M shape;
#   2. one miniature stage tree end to end on the GPU (`dynsim train`, PT -> CPT -> SFT -> RL with evaluation),
#      with the committed corpus sample, so nothing is downloaded.
# It runs the source tree with the PyTorch the machine already has (any CUDA build, Python >= 3.11) and installs
# nothing: step 2 needs numpy, tokenizers and rich beside torch and is skipped, saying why, when one is missing.
# DDP parity of two ranks is checked on CPU (tests/test_distributed.py): NCCL refuses two ranks on one GPU.
#
#   bash bench/gpu_check.sh            # from the repository root; writes its figures to ${OUT:-/tmp}/gpu_check.txt
#   DEVICE=cpu RUN=0.1M-0.2MT-0.05+0.1MT-0.5Kep1-0.1Kep1 bash bench/gpu_check.sh   # the script itself, on a CPU
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
RUN="${RUN:-0.3M-1MT-0.1+0.4MT-2Kep2-0.4Kep1}"
REPORT="${OUT:-/tmp}/gpu_check.txt"
mkdir -p "$(dirname "$REPORT")"
exec > >(tee "$REPORT") 2>&1

echo "== machine"
date -u
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
"$PY" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' || exit 1

echo "== 1. throughput and MFU (bf16, torch.compile)"
for size in 125M 350M; do
  timeout 240 "$PY" bench/gpu_throughput.py --size "$size" --micro-batch 16 --steps 30 \
    || timeout 120 "$PY" bench/gpu_throughput.py --size "$size" --micro-batch 16 --steps 30 --no-compile \
    || echo "throughput of $size failed (or no CUDA device)"
done

echo "== 2. a miniature stage tree on the GPU"
if "$PY" -c 'import numpy, tokenizers, rich' 2>/dev/null; then
  recipe="$(mktemp -d)/gpu_quick.toml"
  printf 'extends = "quick"\n[data]\ngeneral_corpus = "sample"\n[run]\ndevice = "%s"\n' "$DEVICE" > "$recipe"
  out="$(mktemp -d)"
  start=$(date +%s)
  DYNSIM_CACHE="$out/cache" timeout 300 "$PY" -m dynsim train "$RUN" \
      --recipe "$recipe" --runs "$out/runs" --quiet \
    && echo "stage tree done in $(( $(date +%s) - start )) s" \
    && "$PY" - "$out/runs" <<'EOF'
import json, sys
from pathlib import Path
for rec in sorted(Path(sys.argv[1]).glob("*/seed0/result.json"), key=lambda p: len(p.parent.parent.name)):
    r = json.loads(rec.read_text())
    ms = {m["task"] + "/" + m["metric"]: m["value"] for m in r.get("metrics", []) if isinstance(m, dict)}
    shown = {k: round(v, 3) for k, v in ms.items() if k.startswith(("general_text", "arith"))}
    print(r["config"], r["provenance"]["device"], r["timings"], shown)
EOF
else
  echo "skipped: numpy, tokenizers or rich is not installed for $PY here (the check installs nothing)"
fi
echo "== done; report in $REPORT"
