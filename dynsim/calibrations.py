"""The bundled calibrations, one entry each: its data, the runs its fit holds out, the loss law's form, and where
its posterior lives. `predict`, `fit`, `validate`, `figs` and the benchmarks read this table; adding a calibration
is one entry here plus its data (a long CSV under `dynsim/data/NAME/`, read as a user's own through
`dynsim.runs_csv`).

Light: no xarray at import (`dynsim predict` reads only `posterior_path`).
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path

from dynsim.errors import UserError


class CalibrationError(UserError):
    """An unknown calibration, or one whose data or posterior is missing."""


@dataclasses.dataclass(frozen=True)
class Calibration:
    name: str
    about: str
    # where the numbers come from: "evolm_tables", "gadre2024" (results-module readers of their published CSVs),
    # "csv" (dynsim/data/NAME/runs.csv.gz, the documented long CSV) or "study" (a study's collected results.nc)
    source: str
    form: str = "chinchilla"  # the loss law's form (forward.FORMS): the one PSIS-LOO prefers on its data
    # kept out of the fit: size_from=N (sizes ≥ N), tuned_from=D (post-trained runs of checkpoints ≥ D tokens) or
    # study=SPEC (a study's blind-validation runs)
    hold_out: dict = dataclasses.field(default_factory=dict)
    study: str = ""  # for source "study": the study's folder, relative to the repository root
    # of a testbed's numbers, the ones this calibration fits: annealed (final) checkpoints only, these tasks only
    final_only: bool = False
    checkpoints_from: float = 0.0  # tokens: earlier checkpoints (a model still near chance everywhere) left out
    tasks: tuple = ()
    metrics: tuple = ()
    authors_method: str = ""  # the testbed authors' own method, a baseline of `validate --baselines`

    def __post_init__(self):
        if self.source not in ("evolm_tables", "gadre2024", "csv", "study") or (self.source == "study") != bool(self.study):
            raise CalibrationError(f"calibration '{self.name}': bad source '{self.source}'")

    @property
    def folder(self) -> Path:
        """Where its posterior (and, for a study, its results) live."""
        if self.study:
            return Path(__file__).resolve().parents[1] / self.study  # a study run here, kept in the repository
        return Path(str(resources.files("dynsim") / "data" / "calibrations"))

    @property
    def posterior_path(self) -> Path:
        return self.folder / ("posterior.npz" if self.study else f"{self.name}.npz")

    def dataset(self, selected: bool = True):
        """The results Dataset it is fitted to (imports xarray); selected=False: a testbed's every number."""
        from dynsim import results, runs_csv

        if self.source == "evolm_tables":
            return results.from_evolm_csv()
        if self.source == "gadre2024":
            return results.from_gadre_csv()
        if self.source == "csv":
            folder = resources.files("dynsim") / "data" / self.name
            ds = runs_csv.read(str(folder / "runs.csv.gz"), title=self.about.split(":")[0],
                               citation=_citation(Path(str(folder / "README.md"))))
            return self._selected(ds) if selected else ds
        path = self.folder / "results.nc"
        if not path.exists():
            raise CalibrationError(f"{path}: the study's results are missing (run and collect it, see studies/README.md)")
        return results.load(path)


    def _selected(self, ds):
        import numpy as np

        from dynsim import results

        keep = np.ones(ds.sizes[results.OBS], bool)
        notes = []
        if self.final_only:
            keep &= ds.pretrain_schedule.values == 0
            notes.append("final (annealed) checkpoints")
        if self.checkpoints_from:
            keep &= ds.pretrain.values >= self.checkpoints_from
            notes.append(f"checkpoints from {self.checkpoints_from:.3g} tokens")
        if self.tasks:
            keep &= np.isin(ds.task.values, self.tasks)
            notes.append(f"tasks {', '.join(self.tasks)}")
        if self.metrics:
            keep &= np.isin(ds.metric.values, self.metrics)
            notes.append(f"metrics {', '.join(self.metrics)}")
        return results.select(ds, keep, "; ".join(notes)) if notes else ds


def _citation(readme: Path) -> str:
    """The README's line that starts 'Cite:'."""
    for line in readme.read_text().splitlines() if readme.exists() else []:
        if line.startswith("Cite:"):
            return line.removeprefix("Cite:").strip()
    return ""


CALIBRATIONS = {c.name: c for c in (
    Calibration("evolm", "EvoLM's published tables: 1B/4B models, 10-320BT, CPT mixes, SFT/RL", "evolm_tables",
                form="smoothmax"),
    Calibration("gadre2024", "Gadre et al. 2024: 104 open_lm runs on three corpora, fitted below 1B parameters",
                "gadre2024", form="smoothmax", hold_out=dict(size_from=1e9), authors_method="gadre2024"),
    Calibration("gadre2024_compute", "Gadre et al. 2024, scale through compute 6ND alone (kept to compare forms)",
                "gadre2024", form="compute", hold_out=dict(size_from=1e9), authors_method="gadre2024"),
    Calibration("olmo_ladder", "OLMo model ladder: 30 runs of 190M-3.2B at 0.5-10x 20 tokens/param, fitted below "
                "3B parameters", "csv", form="smoothmax", hold_out=dict(size_from=3e9), final_only=True, authors_method="olmo_ladder",
                tasks=("c4_en_val", "mmlu_stem_val", "mmlu_humanities_val", "mmlu_social_sciences_val",
                       "mmlu_other_val", "hellaswag_val", "arc_easy_val", "arc_challenge_val", "boolq_val",
                       "csqa_val", "openbookqa_val", "piqa_val", "socialiqa_val", "winogrande_val")),
    # Pythia's paper proposes no extrapolation law, so its split has the naive baselines and least squares only.
    # Zero-shot, the suite's five tasks that rise from their chance rate within the fitted sizes: LogiQA, MMLU and
    # WSC stay at chance (21-27%, WSC below its own) from 70M to 1B, carry no scaling signal, and split the
    # posterior into modes of where they would start to rise; ARC-Challenge starts below its chance (17-19% at
    # 70M-160M: its questions were chosen to defeat word co-occurrence), which the cloze link's chance floor cannot
    # hold, so chains disagree on its ceiling.
    Calibration("pythia", "Pythia: 8 runs of 70M-1B on the Pile and its deduplicated copy, 300BT cosine, zero-shot "
                "accuracy along training, fitted below 1.2B parameters", "csv", form="smoothmax",
                hold_out=dict(size_from=1.1e9), checkpoints_from=2e9, metrics=("acc",),
                tasks=tuple(f"{t}_0shot" for t in ("arc_easy", "lambada_openai", "piqa", "sciq", "winogrande"))),
    # One model (OLMo-1B) along its pretraining, each checkpoint fine-tuned on one of five data sets: the split
    # predicts what fine-tuning does to a later checkpoint whose base evaluations are seen (its 592k-step runs).
    # One size, so the loss law's size-data interaction is not identified: the sum form.
    Calibration("amuro_char", "Amuro & Char: OLMo-1B checkpoints fine-tuned on five data sets, fitted up to step "
                "505k", "csv", hold_out=dict(tuned_from=2.4e12)),
    Calibration("mini", "the miniature EvoLM study run here, fitted without its blind-validation runs", "study",
                hold_out=dict(study="studies/mini_evolm.toml"), study="studies/mini_evolm"),
)}


def get(name: str) -> Calibration:
    if name not in CALIBRATIONS:
        raise CalibrationError(f"unknown calibration '{name}': choose one of {', '.join(CALIBRATIONS)} "
                               "or pass --posterior PATH")
    return CALIBRATIONS[name]


def held_out_configs(rule: dict, configs) -> dict | None:
    """The runs a hold-out rule keeps out of a fit, for validation: size_from=N (sizes ≥ N), tuned_from=D
    (post-trained runs of checkpoints ≥ D tokens), study=SPEC (a study's [study] holdout) or names=[RUN, …].
    Returns dict(rule=its description, configs=the run names it names, sorted), or None for no rule."""
    from dynsim.study import StudyError, load_study

    if "size_from" in rule:
        text, names = f"size >= {rule['size_from']:g}", {c.name for c in configs if c.size >= rule["size_from"]}
    elif "tuned_from" in rule:
        text = f"post-trained runs of checkpoints >= {rule['tuned_from']:g} tokens"
        names = {c.name for c in configs if c.post_trained and c.pretrain >= rule["tuned_from"]}
    elif "study" in rule:
        path = Path(rule["study"])
        if not path.is_absolute() and not path.exists():
            from dynsim.posterior import repo_root

            path = repo_root() / path  # a bundled study's spec, from the repository
        try:
            names = {c.name for c in load_study(path).holdout}
        except (StudyError, OSError) as e:
            raise CalibrationError(str(e)) from None
        text = f"the blind-validation runs of {Path(rule['study']).name}"
    elif "names" in rule:
        from dynsim.config import parse_config

        names = {parse_config(n).name for n in rule["names"]}
        text = "the runs named by --hold-out"
    else:
        return None
    return dict(rule=text, configs=sorted(names))
