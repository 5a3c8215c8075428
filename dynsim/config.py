"""The run-config language: EvoLM's names for a run through PT → CPT → SFT → RL.

    {size}-{PT}BT[-{replay}+{domain}BT][-[{data}:]{N}Kep{E}][-{M}Kep{F}]      e.g. 1B-160BT-8+42BT-100Kep1-100Kep8

One `RunConfig` is the currency everywhere (CLI, stage tree, result records, Dataset coordinates).
Counts are held as exact integers (parameters, tokens, examples); units live only at the edges, in
`parse` and `format`. A stage that was not run is 0 (no CPT: replay = domain = 0; no SFT: examples = 0).

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
STAGES = ("pt", "cpt", "sft", "rl")  # the training stages, in the order a run passes them (RunConfig.stage())
STAGE_LABEL = {"pt": "base model", "cpt": "after CPT", "sft": "after SFT", "rl": "after SFT+RL"}  # a model after each


class ConfigError(UserError):
    """A malformed run-config; the message names the bad part and the expected form."""


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

    def __post_init__(self):
        if self.size <= 0:
            raise ConfigError(f"size must be positive, got {self.size}")
        if self.pretrain <= 0:
            raise ConfigError(f"pretraining tokens must be positive, got {self.pretrain}")
        if self.pretrain_schedule and self.pretrain_schedule <= self.pretrain:
            raise ConfigError(
                f"an intermediate checkpoint '{self.pretrain}of{self.pretrain_schedule}' must lie before the end of its schedule"
            )
        if min(self.cpt_replay, self.cpt_domain) < 0 or (self.cpt_replay > 0 and self.cpt_domain == 0):
            raise ConfigError("CPT needs domain tokens > 0 and replay tokens >= 0, as in '8+42BT'")
        for stage, n, e in (("SFT", self.sft_examples, self.sft_epochs), ("RL", self.rl_examples, self.rl_epochs)):
            if n < 0 or e < 0 or (n == 0) != (e == 0):
                raise ConfigError(f"{stage} needs both examples and epochs > 0, as in '100Kep1'")
        if self.rl_examples and not self.sft_examples:
            raise ConfigError("RL without SFT: the RL stage starts from an SFT model; give an SFT stage first")
        if self.sft_data != "":
            check_data_name(self.sft_data)
            if not self.sft_examples:
                raise ConfigError(f"SFT data '{self.sft_data}' without an SFT stage: give it with one, as in "
                                  f"'{self.sft_data}:100Kep1'")

    # -- derived views -------------------------------------------------------------------------
    @property
    def has_cpt(self) -> bool:
        return self.cpt_domain > 0

    @property
    def has_sft(self) -> bool:
        return self.sft_examples > 0

    @property
    def has_rl(self) -> bool:
        return self.rl_examples > 0

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
        if self.has_rl:
            return dataclasses.replace(self, rl_examples=0, rl_epochs=0)
        if self.has_sft:
            return dataclasses.replace(self, sft_examples=0, sft_epochs=0, sft_data="")
        if self.has_cpt:
            return dataclasses.replace(self, cpt_replay=0, cpt_domain=0)
        return None

    def stage(self) -> str:
        """The last stage this run trains: 'pt', 'cpt', 'sft' or 'rl'."""
        return "rl" if self.has_rl else "sft" if self.has_sft else "cpt" if self.has_cpt else "pt"

    def replace(self, **changes) -> RunConfig:
        """A copy with changes; taking the SFT stage away takes its data set with it (the base model of
        `1B-3TT-mnli:6Kep3` is `1B-3TT`), so callers that cut a run at a stage need not know of sft_data."""
        if changes.get("sft_examples", self.sft_examples) == 0 and "sft_data" not in changes:
            changes["sft_data"] = ""
        return dataclasses.replace(self, **changes)

    def __str__(self) -> str:
        return self.name


FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig))
COUNT_FIELDS = ("size", "pretrain", "cpt_replay", "cpt_domain", "sft_examples", "sft_epochs", "rl_examples",
                "rl_epochs")  # what config_distance compares


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
    d += 10.0 if a.has_sft and b.has_sft and a.sft_data != b.sft_data else 0.0  # fine-tuned on other data
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
    parts = [format_size(c.size), pt]
    if c.has_cpt:
        parts.append(format_tokens(c.cpt_replay, c.cpt_domain))
    if c.has_sft:
        parts.append(format_sft(c.sft_data, c.sft_examples, c.sft_epochs))
    if c.has_rl:
        parts.append(format_examples(c.rl_examples, c.rl_epochs))
    return "-".join(parts)


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


def parse_cpt(text: str) -> tuple[int, int]:
    """'8+42BT' → (8e9, 42e9): replay + domain tokens."""
    m = _CPT.fullmatch(text.strip())
    if not m:
        raise ConfigError(f"bad CPT mix {shown(text)}: expected {{replay}}+{{domain}} tokens such as 8+42BT or 0+50BT")
    return _count(m[1], m[3], "CPT mix", text), _count(m[2], m[3], "CPT mix", text)


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


def parse_sft(text: str) -> tuple[str, int, int]:
    """'mnli:393Kep3' → ('mnli', 393_000, 3); '100Kep1' → ('', 100_000, 1)."""
    data, colon, budget = text.strip().rpartition(":")
    if colon and not _DATA.fullmatch(data):
        raise ConfigError(f"bad SFT stage {shown(text)}: the data name {shown(data)} must be lowercase letters, digits and '_', "
                          f"as in mnli:393Kep3")
    return (data, *parse_examples(budget, "SFT"))


def parse_config(name: str) -> RunConfig:
    """Parse an EvoLM name; raises ConfigError naming the bad part."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"empty run name: expected {NAME_FORM}")
    parts = name.strip().split("-")
    if len(parts) < 2:
        raise ConfigError(f"bad run name {shown(name)}: expected {NAME_FORM}")
    size = parse_size(parts[0])
    pretrain, schedule = parse_pretrain(parts[1])
    fields = dict(size=size, pretrain=pretrain, pretrain_schedule=schedule)
    rest = parts[2:]
    if rest and "+" in rest[0]:
        fields["cpt_replay"], fields["cpt_domain"] = parse_cpt(rest.pop(0))
        if fields["cpt_domain"] == 0:
            raise ConfigError(f"bad CPT mix {shown(parts[2])}: domain tokens must be > 0")
    if len(rest) > 2:
        raise ConfigError(f"bad run name {shown(name)}: too many parts after the CPT field; expected {NAME_FORM}")
    for stage, part in zip(("sft", "rl"), rest):
        if "+" in part:
            raise ConfigError(f"bad run name {shown(name)}: the CPT field {shown(part)} must come right after the PT tokens")
        if stage == "sft":
            fields["sft_data"], fields["sft_examples"], fields["sft_epochs"] = parse_sft(part)
        else:
            fields["rl_examples"], fields["rl_epochs"] = parse_rl(part)
    if not name.strip(" ").isprintable():  # a line separator or tab around a name that parsed: a paste, not a name
        raise ConfigError(f"bad run name {shown(name)}: it holds a control character or line break")
    return RunConfig(**fields)


def parse_rl(text: str) -> tuple[int, int]:
    """'100Kep8' → (100_000, 8); a data name is the SFT stage's alone."""
    if ":" in text:
        raise ConfigError(f"bad RL budget {shown(text)}: only the SFT stage names its data set; expected {{examples}}ep"
                          f"{{epochs}} such as 100Kep8")
    return parse_examples(text, "RL")


def config_from_flags(
    size: str = "1B",
    pretrain: str | None = None,
    cpt: str | None = None,
    sft: str | None = None,
    rl: str | None = None,
) -> RunConfig:
    """The CLI's stage flags (--size 1B --pretrain 320BT --cpt 8+42BT --sft 100Kep1 --rl 100Kep8; --sft mnli:6Kep3
    names the SFT data)."""
    if pretrain is None:
        raise ConfigError("--pretrain is required, e.g. --pretrain 320BT")
    if rl is not None and sft is None:
        raise ConfigError("RL without SFT: give --sft before --rl, e.g. --sft 100Kep1 --rl 100Kep8")
    fields = dict(size=parse_size(size))
    fields["pretrain"], fields["pretrain_schedule"] = parse_pretrain(pretrain)
    if cpt is not None:
        fields["cpt_replay"], fields["cpt_domain"] = parse_cpt(cpt)
        if fields["cpt_domain"] == 0:
            raise ConfigError(f"bad CPT mix {shown(cpt)}: domain tokens must be > 0")
    if sft is not None:
        fields["sft_data"], fields["sft_examples"], fields["sft_epochs"] = parse_sft(sft)
    if rl is not None:
        fields["rl_examples"], fields["rl_epochs"] = parse_rl(rl)
    return RunConfig(**fields)
