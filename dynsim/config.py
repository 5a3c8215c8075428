"""The run-config language: EvoLM's names for a run through PT → CPT → SFT → RL.

    {size}-{PT}BT[-{replay}+{domain}BT][-[{data}:]{N}Kep{E}][-{M}Kep{F}]      e.g. 1B-160BT-8+42BT-100Kep1-100Kep8

One `RunConfig` is the currency everywhere (CLI, stage tree, result records, Dataset coordinates).
Counts are held as exact integers (parameters, tokens, examples); units live only at the edges, in
`parse` and `format`. A stage that was not run is 0 (no CPT: replay = domain = 0; no SFT: examples = 0).
The stages after pretraining are data (`AFTER_PT`, a `Stage` each), read by every layer that handles stages.

Two extensions to EvoLM's grammar:
- an un-annealed intermediate checkpoint (EvoLM Table 3) is written `1B-20of160BT` — the checkpoint at 20BT
  of a run whose learning-rate schedule was planned for 160BT;
- the SFT data set, where runs fine-tuned on different data are compared (Amuro & Char: one checkpoint
  fine-tuned on MNLI, PAWS, ...), is part of a run's identity: `1B-3TT-mnli:6Kep3`. Without a name
  (`100Kep1`) the SFT stage is on the unnamed, default data of its study (EvoLM's), held as `sft_data = ""`,
  so every name without one means what it always did.
"""

from __future__ import annotations

import dataclasses
import math
import re
from decimal import Decimal, InvalidOperation

from dynsim.errors import UserError, shown

UNITS = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}
MAX_COUNT = 10**24  # beyond every real size, token, example or epoch count; a 5,000-digit one is a typo
NAME_FORM = ("{size}-{PT}BT[-{replay}+{domain}BT][-[{data}:]{N}Kep{E}][-{M}Kep{F}], "
             "e.g. 1B-160BT-8+42BT-100Kep1-100Kep8 or 1B-3TT-mnli:6Kep3")
_NUM = r"[0-9]+(?:\.[0-9]+)?"  # ASCII digits: '١B' or '１B' is not how a count is typed
_DATA = re.compile(r"[a-z0-9_]+")  # a data set's name: no '-' (separates stages) nor ':' (ends the name)


class ConfigError(UserError):
    """A malformed run-config; the message names the bad part and the expected form."""


@dataclasses.dataclass(frozen=True)
class Stage:
    """A training stage after pretraining, as every layer reads it: the name language (its part of a run's name, its
    flag `--{key}`), the run's counts (`fields`, all 0 when the stage was not run), the Dataset's coordinates and
    their units, the stage tree and the trainer (its `[key]` recipe section, `[resources.key]`, its log).

    Adding a stage is an entry in AFTER_PT and its count fields on RunConfig (here), its effect on the numbers in
    `dynsim/forward.py` with its prior in `calibrate/model.py`, its batches and loss in `train_runs/stages.py` and
    its loop in `train_runs/train.py` (LOOPS), and its recipe section in `train_runs/recipes/`. The grammar, the
    stage tree, study specs, the Dataset's coordinates, the CLI's flags, predict's outputs and the decision grids
    read this table."""

    key: str  # 'cpt': its flag, grid axis, recipe section and log name
    title: str  # 'CPT': how messages name it
    label: str  # 'after CPT': a model after it, as `predict` heads its numbers
    fields: tuple[str, ...]  # its RunConfig counts, in the order its name part writes them
    units: tuple[str, ...]  # each field's unit in the Dataset
    budget: str  # its name part: 'mix' ({replay}+{domain} tokens) or 'examples' ({N}ep{E}, trained on N×E×tpe tokens)
    example: str  # a budget as typed, for messages and help
    help: str  # what the budget is, with an example, for the flag's help
    tuned: bool = False  # post-training: a model after it is scored on downstream tasks (EvoLM's protocol)
    follows: str = ""  # the stage whose model this one must start from ('' = whatever the run had before)
    names_data: bool = False  # its part may name its data set ('mnli:6Kep3', held in RunConfig.sft_data)
    mark: str = ""  # a prefix its part carries where its shape alone would not say which stage it is ('dpo50Kep2')
    # EvoLM's stages: every results Dataset carries their columns. A stage added later is stored only where some run
    # trained it, so a Dataset (and a posterior's data hash) written before it reads and hashes as it always did.
    in_every_dataset: bool = False

    def claims(self, part: str) -> bool:
        """Whether a name part is marked as this stage's: its mark, then the budget's first digit."""
        return bool(self.mark) and part.startswith(self.mark) and part[len(self.mark):][:1].isdigit()

    def ran(self, config: RunConfig) -> bool:
        return getattr(config, self.fields[-1]) > 0

    def counts(self, config: RunConfig) -> tuple[int, ...]:
        return tuple(getattr(config, f) for f in self.fields)

    def parse(self, text: str) -> dict:
        """Its name part (or its flag's value, where a mark may be left out) → the RunConfig fields it sets
        (ConfigError naming the bad part)."""
        if self.claims(text.strip()):
            text = text.strip()[len(self.mark):]
        if self.budget == "mix":
            counts = parse_cpt(text, self.title)
            if counts[-1] == 0:
                raise ConfigError(f"bad {self.title} mix {shown(text)}: domain tokens must be > 0")
            return dict(zip(self.fields, counts))
        if self.names_data:
            data, *counts = parse_sft(text, self.title)
            return dict(zip(self.fields, counts), sft_data=data)
        if ":" in text:
            raise ConfigError(f"bad {self.title} budget {shown(text)}: only the {DATA_STAGE} stage names its data set; "
                              f"expected {{examples}}ep{{epochs}} such as {self.example}")
        return dict(zip(self.fields, parse_examples(text, self.title)))

    def parse_counts(self, text: str) -> tuple[int, ...]:
        """A budget alone, where no data set can be chosen (a study's grid trains on its recipe's mix; an
        optimisation axis): its counts, in `fields` order."""
        fields = self.parse(text)
        if fields.get("sft_data"):
            raise ConfigError(f"bad {self.title} budget {shown(text)}: no data set can be chosen here; expected "
                              f"{{examples}}ep{{epochs}} such as {self.example}")
        return tuple(fields[f] for f in self.fields)

    def format(self, config: RunConfig) -> str:
        return self.write(self.counts(config), config.sft_data if self.names_data else "")

    def write(self, counts: tuple[int, ...], data: str = "") -> str:
        """Counts (in `fields` order) as its name part: '8+42BT', '100Kep1', 'mnli:6Kep3'."""
        return self.mark + (format_tokens(*counts) if self.budget == "mix" else format_sft(data, *counts))

    @property
    def typical(self) -> tuple[int, ...]:
        """The counts of its example budget: what a prediction assumes for it where a calibration has none."""
        return self.parse_counts(self.example)

    def tokens(self, config: RunConfig, tokens_per_example: dict[str, int]) -> int:
        """Tokens this stage of `config` trains: its mix, or examples × epochs × the study's tokens per example
        (0 where the study gives none for it)."""
        counts = self.counts(config)
        return sum(counts) if self.budget == "mix" else counts[0] * counts[1] * tokens_per_example.get(self.key, 0)

    def check(self, config: RunConfig) -> None:
        counts = self.counts(config)
        if self.budget == "mix":
            if min(counts) < 0 or (counts[0] > 0 and counts[1] == 0):
                raise ConfigError(f"{self.title} needs domain tokens > 0 and replay tokens >= 0, as in '{self.example}'")
        elif min(counts) < 0 or (counts[0] == 0) != (counts[1] == 0):
            raise ConfigError(f"{self.title} needs both examples and epochs > 0, as in '{self.example}'")
        if self.follows and self.ran(config) and not STAGE[self.follows].ran(config):
            first = STAGE[self.follows]
            raise ConfigError(f"{self.title} without {first.title}: the {self.title} stage starts from an {first.title} "
                              f"model; give an {first.title} stage first")


AFTER_PT = (  # the stages after pretraining, in the order a run passes them
    Stage("cpt", "CPT", "after CPT", ("cpt_replay", "cpt_domain"), ("tokens", "tokens"), "mix", "8+42BT",
          "continued pretraining replay+domain tokens, e.g. 8+42BT", in_every_dataset=True),
    Stage("sft", "SFT", "after SFT", ("sft_examples", "sft_epochs"), ("examples", "epochs"), "examples", "100Kep1",
          "SFT examples×epochs, e.g. 100Kep1, or with its data set, mnli:6Kep3", tuned=True, names_data=True,
          in_every_dataset=True),
    Stage("rl", "RL", "after SFT+RL", ("rl_examples", "rl_epochs"), ("examples", "epochs"), "examples", "100Kep8",
          "RL examples×epochs, e.g. 100Kep8", tuned=True, follows="sft",
          in_every_dataset=True),
)


def _readable(stages) -> bool:
    """Whether names can be read back: unmarked stages of one shape are told apart by their order alone, so each
    must follow the one before it (RL starts from SFT: a lone examples part is SFT's), and marks are distinct."""
    for shape in ("mix", "examples"):
        plain = [s for s in stages if not s.mark and s.budget == shape]
        if any(later.follows != earlier.key for earlier, later in zip(plain, plain[1:])):
            return False
    marks = [s.mark for s in stages if s.mark]
    return len(marks) == len(set(marks)) and all(m.isalpha() and m.islower() for m in marks)


if not _readable(AFTER_PT):
    raise RuntimeError("config.AFTER_PT: two stages whose name parts cannot be told apart; give the later one a mark")
STAGE = {s.key: s for s in AFTER_PT}
STAGES = ("pt", *STAGE)  # every training stage, in order (RunConfig.stage())
STAGE_LABEL = {"pt": "base model", **{s.key: s.label for s in AFTER_PT}}  # a model after each
TUNED = tuple(s.key for s in AFTER_PT if s.tuned)  # the post-training stages
EXAMPLE_STAGES = tuple(s.key for s in AFTER_PT if s.budget == "examples")  # trained on examples × epochs × tpe
DATA_KEY = next(s.key for s in AFTER_PT if s.names_data)  # the stage whose data set a name may give
DATA_STAGE = STAGE[DATA_KEY].title


@dataclasses.dataclass(frozen=True, order=True)
class RunConfig:
    """One training run, from pretraining through RL. All counts are exact integers."""

    size: int  # parameters
    pretrain: int  # pretraining tokens seen by this checkpoint
    cpt_replay: int = 0  # CPT tokens replayed from the pretraining corpus
    cpt_domain: int = 0  # CPT tokens of the domain corpus
    sft_examples: int = 0
    sft_epochs: int = 0
    rl_examples: int = 0
    rl_epochs: int = 0
    pretrain_schedule: int = 0  # tokens the PT learning-rate schedule was planned for; 0 = annealed (= pretrain)
    sft_data: str = ""  # the SFT data set ('mnli'); "" = the study's unnamed default data
    # a new stage's counts go here, default 0, each named in its Stage's `fields`

    def __post_init__(self):
        if self.size <= 0:
            raise ConfigError(f"size must be positive, got {self.size}")
        if self.pretrain <= 0:
            raise ConfigError(f"pretraining tokens must be positive, got {self.pretrain}")
        if self.pretrain_schedule and self.pretrain_schedule <= self.pretrain:
            raise ConfigError(
                f"an intermediate checkpoint '{self.pretrain}of{self.pretrain_schedule}' must lie before the end of its schedule"
            )
        for stage in AFTER_PT:
            stage.check(self)
        if self.sft_data != "":
            check_data_name(self.sft_data)
            if not self.has(DATA_KEY):
                raise ConfigError(f"{DATA_STAGE} data '{self.sft_data}' without an {DATA_STAGE} stage: give it with one, "
                                  f"as in '{self.sft_data}:100Kep1'")

    # -- derived views -------------------------------------------------------------------------
    def has(self, stage: str) -> bool:
        """Whether this run trains `stage` ('pt' always)."""
        return stage == "pt" or STAGE[stage].ran(self)

    @property
    def post_trained(self) -> bool:
        """Whether a post-training stage ran: its numbers are downstream ones."""
        return any(self.has(s) for s in TUNED)

    def upstream(self) -> RunConfig:
        """The model before post-training (the base model of `1B-160BT-8+42BT-100Kep1` is `1B-160BT-8+42BT`)."""
        return self.without(*TUNED)

    @property
    def has_cpt(self) -> bool:
        return self.has("cpt")

    @property
    def has_sft(self) -> bool:
        return self.has("sft")

    @property
    def has_rl(self) -> bool:
        return self.has("rl")

    @property
    def annealed(self) -> bool:
        return self.pretrain_schedule == 0

    @property
    def tokens_per_param(self) -> float:
        return self.pretrain / self.size

    @property
    def name(self) -> str:
        return format_config(self)

    def parent(self) -> RunConfig | None:
        """The run whose checkpoint this one starts from (None for pretraining)."""
        stage = self.stage()
        return None if stage == "pt" else self.without(stage)

    def stage(self) -> str:
        """The last stage this run trains: one of STAGES."""
        return next((s for s in reversed(STAGES) if self.has(s)))

    def without(self, *stages: str) -> RunConfig:
        """This run with `stages` (keys of AFTER_PT) not run, e.g. without('sft', 'rl') is its upstream model."""
        return self.replace(**{f: 0 for s in stages for f in STAGE[s].fields})

    def with_stage(self, stage: str, counts: tuple[int, ...]) -> RunConfig:
        """This run with `stage`'s counts set to `counts` (in its `fields` order)."""
        return self.replace(**dict(zip(STAGE[stage].fields, counts)))

    def replace(self, **changes) -> RunConfig:
        """A copy with changes; taking the SFT stage away takes its data set with it (the base model of
        `1B-3TT-mnli:6Kep3` is `1B-3TT`), so callers that cut a run at a stage need not know of sft_data."""
        ran = STAGE[DATA_KEY].fields[-1]
        if changes.get(ran, getattr(self, ran)) == 0 and "sft_data" not in changes:
            changes["sft_data"] = ""
        return dataclasses.replace(self, **changes)

    def __str__(self) -> str:
        return self.name


FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig))
STAGE_FIELDS = tuple(f for s in AFTER_PT for f in s.fields)
COUNT_FIELDS = ("size", "pretrain", *STAGE_FIELDS)  # what config_distance compares
CONFIG_COUNTS = ("size", "pretrain", "pretrain_schedule", *STAGE_FIELDS)  # every count of a RunConfig
LATER_FIELDS = tuple(f for s in AFTER_PT if not s.in_every_dataset for f in s.fields)  # stored where trained
UNIT = dict(size="parameters", pretrain="tokens", pretrain_schedule="tokens",
            **{f: u for s in AFTER_PT for f, u in zip(s.fields, s.units)})
assert set(CONFIG_COUNTS) | {"sft_data"} == set(FIELDS), "a RunConfig count that no stage declares"


def field_label(field: str) -> str:
    """A count's name in messages: 'pretraining tokens', 'CPT domain tokens', 'SFT epochs'."""
    stage = next((s for s in AFTER_PT if field in s.fields), None)
    if stage is None:
        return {"pretrain": "pretraining tokens", "pretrain_schedule": "pretraining schedule tokens"}.get(field, field)
    what = field.removeprefix(stage.key + "_")
    return f"{stage.title} {what}" + (" tokens" if UNIT[field] == "tokens" else "")


def config_distance(a: RunConfig, b: RunConfig) -> float:
    """How far apart two runs are: |log| ratios of their counts (+1, so an absent stage's 0 is a count), 10 for
    each count one run has and the other lacks (a stage present in one only outweighs any difference of
    budget), 10 when both are fine-tuned but on different data sets (another task altogether, as far apart as
    a stage one run lacks), and 5 when one is an un-annealed checkpoint and the other is not.

    Shared by `validate`'s carry-forward baseline (the nearest training run) and the nearest calibrated run
    that `predict` names (Posterior.nearest_observed)."""
    d = 0.0
    for field in COUNT_FIELDS:
        x, y = getattr(a, field), getattr(b, field)
        d += 10.0 if (x == 0) != (y == 0) else abs(math.log((x + 1) / (y + 1)))
    d += 10.0 if a.has(DATA_KEY) and b.has(DATA_KEY) and a.sft_data != b.sft_data else 0.0  # fine-tuned on other data
    return d + (5.0 if a.annealed != b.annealed else 0.0)


# -- numbers with units -----------------------------------------------------------------------------
def _count(text: str, unit: str, what: str, part: str) -> int:
    """'1.6' with unit 'B' → 1_600_000_000 exactly; must be a whole number of items, below MAX_COUNT."""
    try:
        value = Decimal(text) * UNITS[unit]
    except (InvalidOperation, KeyError):
        raise ConfigError(f"bad {what} {shown(part)}") from None
    if value >= MAX_COUNT:
        raise ConfigError(f"bad {what} {shown(part)}: not below 1e24, the largest count a run can have here")
    if value != value.to_integral_value():
        raise ConfigError(f"bad {what} {shown(part)}: {shown(text + unit)} is not a whole number")
    return int(value)


def _mantissa(value: int, unit: str) -> str:
    """The shortest exact decimal for value / unit: 1_600_000_000, 'B' → '1.6'."""
    text = format(Decimal(value) / UNITS[unit], "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _pick_unit(largest: int, units: str) -> str:
    """The largest unit in which the largest value is at least 1."""
    for unit in reversed(units):
        if largest >= UNITS[unit]:
            return unit
    return units[0]


def format_size(params: int) -> str:
    """EvoLM-style sizes: the largest unit giving a mantissa ≥ 0.1 with one decimal (0.5B, 0.3M), else ≥ 1 (125M)."""
    for unit in "TBMK":
        m = _mantissa(params, unit)
        if params * 10 >= UNITS[unit] and len(m.partition(".")[2]) <= 1:
            return m + unit
    unit = _pick_unit(params, "KMBT") if params >= 1000 else ""
    return _mantissa(params, unit) + unit


def format_tokens(*counts: int) -> str:
    """'160BT', '8+42BT', '1.6+48.4BT': one unit for the group, chosen by its largest count."""
    unit = _pick_unit(max(counts), "KMBT")
    return "+".join(_mantissa(c, unit) for c in counts) + unit + "T"


def format_examples(examples: int, epochs: int) -> str:
    unit = _pick_unit(examples, "KMB")
    if examples < 1000:
        unit = ""
    return f"{_mantissa(examples, unit)}{unit}ep{epochs}"


def format_sft(data: str, examples: int, epochs: int) -> str:
    """'mnli:6Kep3', or '100Kep1' for the unnamed default data."""
    return (f"{data}:" if data else "") + format_examples(examples, epochs)


def format_config(c: RunConfig) -> str:
    pt = format_tokens(c.pretrain, c.pretrain_schedule).replace("+", "of") if c.pretrain_schedule else format_tokens(c.pretrain)
    return "-".join([format_size(c.size), pt] + [s.format(c) for s in AFTER_PT if s.ran(c)])


# -- parsing ----------------------------------------------------------------------------------------
_SIZE = re.compile(rf"({_NUM})([KMBT]?)")
_TOKENS = re.compile(rf"({_NUM})([KMBT])T")
_PRETRAIN = re.compile(rf"({_NUM})(?:of({_NUM}))?([KMBT])T")
_CPT = re.compile(rf"({_NUM})\+({_NUM})([KMBT])T")
_EXAMPLES = re.compile(rf"({_NUM})([KMB]?)ep([0-9]+)")


def parse_size(text: str) -> int:
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise ConfigError(f"bad size {shown(text)}: expected a parameter count such as 1B, 125M or 0.3M")
    n = _count(m[1], m[2], "size", text)
    if n <= 0:
        raise ConfigError(f"bad size {shown(text)}: must be positive")
    return n


def parse_pretrain(text: str) -> tuple[int, int]:
    """'320BT' → (320e9, 0); '20of160BT' → (20e9, 160e9)."""
    m = _PRETRAIN.fullmatch(text.strip())
    if not m:
        raise ConfigError(f"bad pretraining tokens {shown(text)}: expected a token count such as 160BT, 4MT or 20of160BT")
    tokens = _count(m[1], m[3], "pretraining tokens", text)
    schedule = _count(m[2], m[3], "pretraining tokens", text) if m[2] else 0
    if tokens <= 0:
        raise ConfigError(f"bad pretraining tokens {shown(text)}: must be positive")
    return tokens, schedule


def parse_cpt(text: str, stage: str = "CPT") -> tuple[int, int]:
    """'8+42BT' → (8e9, 42e9): replay + domain tokens."""
    m = _CPT.fullmatch(text.strip())
    if not m:
        raise ConfigError(f"bad {stage} mix {shown(text)}: expected {{replay}}+{{domain}} tokens such as 8+42BT or 0+50BT")
    return _count(m[1], m[3], f"{stage} mix", text), _count(m[2], m[3], f"{stage} mix", text)


def parse_examples(text: str, stage: str = "SFT") -> tuple[int, int]:
    """'100Kep1' → (100_000, 1)."""
    m = _EXAMPLES.fullmatch(text.strip())
    if not m:
        raise ConfigError(f"bad {stage} budget {shown(text)}: expected {{examples}}ep{{epochs}} such as 100Kep1")
    examples, epochs = _count(m[1], m[2], f"{stage} budget", text), _count(m[3], "", f"{stage} epochs", text)
    if examples <= 0 or epochs <= 0:
        raise ConfigError(f"bad {stage} budget {shown(text)}: examples and epochs must be positive")
    return examples, epochs


def check_data_name(data: str) -> str:
    """A data set's name as the language spells it (lowercase letters, digits, '_'), or a ConfigError."""
    if not isinstance(data, str) or not _DATA.fullmatch(data):
        raise ConfigError(f"bad SFT data name {shown(data)}: expected lowercase letters, digits and '_', as in mnli or "
                          f"tulu_v2")
    return data


def parse_sft(text: str, stage: str = "SFT") -> tuple[str, int, int]:
    """'mnli:393Kep3' → ('mnli', 393_000, 3); '100Kep1' → ('', 100_000, 1)."""
    data, colon, budget = text.strip().rpartition(":")
    if colon and not _DATA.fullmatch(data):
        raise ConfigError(f"bad {stage} stage {shown(text)}: the data name {shown(data)} must be lowercase letters, "
                          f"digits and '_', as in mnli:393Kep3")
    return (data, *parse_examples(budget, stage))


def parse_config(name: str) -> RunConfig:
    """Parse an EvoLM name; raises ConfigError naming the bad part. Each part after the PT tokens belongs to the
    next stage (in AFTER_PT order) whose budget has its shape: a '+' is a mix, anything else examples. Stages of
    one shape are told apart by their order alone (SFT, then RL), so a new stage of a shape already taken, placed
    before one of them, needs a mark of its own in its part."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"empty run name: expected {NAME_FORM}")
    parts = name.strip().split("-")
    if len(parts) < 2:
        raise ConfigError(f"bad run name {shown(name)}: expected {NAME_FORM}")
    size = parse_size(parts[0])
    pretrain, schedule = parse_pretrain(parts[1])
    fields = dict(size=size, pretrain=pretrain, pretrain_schedule=schedule)
    ahead = list(AFTER_PT)  # the stages a further part may still belong to
    for part in parts[2:]:
        marked = next((s for s in AFTER_PT if s.claims(part)), None)
        shape = "mix" if "+" in part else "examples"
        fits = [i for i, s in enumerate(ahead) if s is marked or (not marked and not s.mark and s.budget == shape)]
        if not fits:
            late = [s for s in AFTER_PT if s not in ahead and (s is marked or (not marked and s.budget == shape))]
            if late and (marked or shape == "mix"):
                where = "must come right after the PT tokens" if late[0] is AFTER_PT[0] else \
                    f"is out of order or given twice (the stages' order: {', '.join(s.title for s in AFTER_PT)})"
                raise ConfigError(f"bad run name {shown(name)}: the {late[0].title} field {shown(part)} {where}")
            raise ConfigError(f"bad run name {shown(name)}: too many parts after the PT tokens; expected {NAME_FORM}")
        stage = ahead[fits[0]]
        del ahead[: fits[0] + 1]
        fields |= stage.parse(part)
    if not name.strip(" ").isprintable():  # a line separator or tab around a name that parsed: a paste, not a name
        raise ConfigError(f"bad run name {shown(name)}: it holds a control character or line break")
    return RunConfig(**fields)


def config_from_flags(size: str = "1B", pretrain: str | None = None, *budgets: str | None, **by_stage: str | None
                      ) -> RunConfig:
    """The CLI's stage flags (--size 1B --pretrain 320BT --cpt 8+42BT --sft 100Kep1 --rl 100Kep8; --sft mnli:6Kep3
    names the SFT data): each stage's budget as typed, by position in AFTER_PT order or by key, None if not run."""
    if pretrain is None:
        raise ConfigError("--pretrain is required, e.g. --pretrain 320BT")
    unknown = sorted(set(by_stage) - set(STAGE))
    if len(budgets) > len(STAGE) or unknown:
        raise TypeError(f"config_from_flags takes a budget for each of {', '.join(STAGE)}; got {unknown or budgets}")
    by_stage = dict(zip(STAGE, budgets)) | by_stage
    fields = dict(size=parse_size(size))
    fields["pretrain"], fields["pretrain_schedule"] = parse_pretrain(pretrain)
    for stage in AFTER_PT:
        if by_stage.get(stage.key) is None:
            continue
        if stage.follows and by_stage.get(stage.follows) is None:
            first = STAGE[stage.follows]
            raise ConfigError(f"{stage.title} without {first.title}: give --{first.key} before --{stage.key}, e.g. "
                              f"--{first.key} {first.example} --{stage.key} {stage.example}")
        fields |= stage.parse(by_stage[stage.key])
    return RunConfig(**fields)
