"""Paper figures: one module per figure, each `make(ds, posterior, out_dir) -> FigureRecord`, reading only a
results Dataset and a posterior. `run` draws a selection and writes the index `figures.md` (with `figures.json`
beside it, so that regenerating one figure keeps the others' entries)."""

from __future__ import annotations

import datetime
import importlib
import json
import shlex
from pathlib import Path

from . import style  # noqa: F401  (selects the Agg backend before anything imports pyplot)

from dynsim.config import STAGE_FIELDS
from dynsim.errors import UserError
from dynsim.files import atomic_write_text

FIGURES = {  # name → module, in paper order
    "fig2": "fig2_upstream_pt",
    "fig3": "fig3_downstream_pt",
    "fig4": "fig4_upstream_cpt",
    "fig5": "fig5_downstream_cpt",
    "fig6": "fig6_sft_epochs",
    "fig7": "fig7_sft_examples",
    "fig8": "fig8_rl",
    "forgetting": "forgetting",
    "overtraining": "overtraining",
    "scaling": "scaling",  # a testbed's own: loss and per-task accuracy vs tokens per size
    "finetuning": "finetuning",  # fine-tuning on named data sets along pretraining (Amuro & Char)
}
PRETRAINING_ONLY = ("scaling",)  # the figures a Dataset of base models alone can show
NAMED_SFT = ("finetuning",)  # the figures of a Dataset whose runs fine-tune on named data sets
INDEX, INDEX_JSON = "figures.md", "figures.json"


class FigsError(UserError):
    """A figure request that cannot be met (unknown figure, no bundled data); the message says why."""


def module(name: str):
    if name not in FIGURES:
        raise FigsError(f"unknown figure '{name}': choose from {', '.join(FIGURES)}")
    return importlib.import_module(f"{__name__}.{FIGURES[name]}")


def select(only: str | None, ds=None) -> list[str]:
    """'fig3,fig5' → ['fig3', 'fig5'] (validated); None → every figure the Dataset ds can show (those of base
    models alone where it holds no CPT or post-training run, the fine-tuning figure where runs name their SFT
    data)."""
    if not only:
        if ds is not None and "sft_data" in ds.coords:
            return list(NAMED_SFT)
        staged = ds is None or any(int(ds[f].max()) > 0 for f in STAGE_FIELDS if f in ds.coords)
        return [n for n in FIGURES if n not in NAMED_SFT] if staged else list(PRETRAINING_ONLY)
    names = [n.strip() for n in only.split(",") if n.strip()]
    bad = [n for n in names if n not in FIGURES]
    if bad or not names:
        raise FigsError(f"unknown figure '{','.join(bad) or only}': choose from {', '.join(FIGURES)}")
    return list(dict.fromkeys(names))


def run(ds, posterior, out_dir, names=None, command: str = "dynsim figs", posterior_label: str = "", log=None):
    """Draw the named figures (default all) into out_dir and update its index. Returns the FigureRecords."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for n in names or list(FIGURES):
        rec = module(n).make(ds, posterior, out_dir)
        records.append(rec)
        if log:
            log(f"{n}: {', '.join(p.name for p in rec.files)} ({rec.n_observed} observed points)")
    provenance = dict(data_title=ds.attrs.get("title", ""), data_hash=ds.attrs.get("data_hash", "?"),
                      posterior=posterior_label or posterior.path, posterior_data_hash=posterior.meta.get("data_hash"),
                      posterior_created=posterior.meta.get("created"), draws=posterior.n_draws,
                      generated=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    entries = _read_entries(out_dir)
    for r in records:
        d = r.to_dict()
        d["files"] = [Path(p).name for p in d["files"]]
        entries[r.name] = d | provenance | {"command": _only(command, r.name)}
    ordered = {n: entries[n] for n in list(FIGURES) + sorted(set(entries) - set(FIGURES)) if n in entries}
    atomic_write_text(out_dir / INDEX_JSON, json.dumps(ordered, indent=1))
    atomic_write_text(out_dir / INDEX, render_index(ordered, command))
    return records


def _only(command: str, name: str) -> str:
    """The command that regenerates one figure: the given command with `--only NAME`."""
    words = shlex.split(command)
    out, skip = [], False
    for w in words:
        if skip:
            skip = False
            continue
        if w == "--only":
            skip = True
            continue
        if w.startswith("--only="):
            continue
        out.append(w)
    return shlex.join(out + ["--only", name])


def render_index(entries: dict, command: str) -> str:
    lines = ["# Figures", "", "Written by `dynsim figs`. Each entry: the figure, its caption, the data and posterior it "
             "came from, and the command that regenerates it.", ""]
    for name, e in entries.items():
        lines += [f"## {name}: {e['title']}", "",
                  f"![{name}]({e['files'][0]})" + "".join(f" · [{Path(f).suffix[1:].upper()}]({f})" for f in e["files"][1:]),
                  "", e["caption"], "",
                  f"- data: {e['data_title']} (data hash `{e['data_hash']}`)",
                  f"- posterior: `{e['posterior']}` (fitted to data `{e['posterior_data_hash']}`, {e['draws']} draws, "
                  f"created {e['posterior_created']})"]
        if e["posterior_data_hash"] and e["posterior_data_hash"] != e["data_hash"]:
            lines.append("- note: the posterior was fitted to other data than the points shown")
        lines += [f"- generated {e['generated']}; regenerate: `{e['command']}`", ""]
    return "\n".join(lines)


def _read_entries(out_dir: Path) -> dict:
    try:
        d = json.loads((out_dir / INDEX_JSON).read_text())
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}
