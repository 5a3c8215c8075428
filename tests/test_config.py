"""The run-config language: parse ⇄ format are exact inverses; malformed names get one clear error."""

import math
import re

import pytest
from hypothesis import given, settings, strategies as st

from dynsim.config import ConfigError, RunConfig, config_from_flags, format_config, parse_config

EXAMPLES = ["1B-160BT-8+42BT-100Kep1-100Kep8", "1B-160BT-0+50BT", "0.5B-10BT", "1B-160BT-100Kep1",
            "1B-160BT-1.6+48.4BT", "125M-4MT", "0.3M-4MT-1+3MT-2Kep1-2Kep4", "4B-320BT", "1B-20of160BT-100Kep1",
            "1B-1.43of3.09TT-mnli:393Kep3", "1B-160BT-8+42BT-tulu_v2:326.154Kep5-100Kep8"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_round_trip(name):
    assert format_config(parse_config(name)) == name


def test_fields_are_exact_counts():
    c = parse_config("1B-160BT-1.6+48.4BT-100Kep1-100Kep8")
    assert (c.size, c.pretrain, c.cpt_replay, c.cpt_domain) == (10**9, 160 * 10**9, 1_600_000_000, 48_400_000_000)
    assert (c.sft_examples, c.sft_epochs, c.rl_examples, c.rl_epochs) == (100_000, 1, 100_000, 8)
    assert parse_config("0.3M-4MT").size == 300_000
    assert c.parent().name == "1B-160BT-1.6+48.4BT-100Kep1" and c.stage() == "rl"


def test_flags_equal_names():
    flags = config_from_flags("1B", "320BT", "8+42BT", "100Kep1", "100Kep8")
    assert flags == parse_config("1B-320BT-8+42BT-100Kep1-100Kep8")


counts = st.integers(min_value=1, max_value=10**13)
data_names = st.from_regex(r"[a-z0-9_]{1,16}", fullmatch=True)


@st.composite
def configs(draw):
    fields = dict(size=draw(counts), pretrain=draw(counts))
    if draw(st.booleans()):
        fields["cpt_replay"], fields["cpt_domain"] = draw(st.integers(0, 10**12)), draw(counts)
    if draw(st.booleans()):
        fields["sft_examples"], fields["sft_epochs"] = draw(st.integers(1, 10**7)), draw(st.integers(1, 50))
        fields["sft_data"] = draw(st.one_of(st.just(""), data_names))
        if draw(st.booleans()):
            fields["rl_examples"], fields["rl_epochs"] = draw(st.integers(1, 10**7)), draw(st.integers(1, 50))
    if draw(st.booleans()):
        fields["pretrain_schedule"] = fields["pretrain"] + draw(counts)
    return RunConfig(**fields)


@settings(deadline=None)  # the data-name strategy is slow to warm up on a loaded machine
@given(configs())
def test_parse_inverts_format(cfg):
    name = format_config(cfg)
    assert parse_config(name) == cfg
    assert format_config(parse_config(name)) == name  # the canonical string is a fixed point


@pytest.mark.parametrize("bad, part", [("8+BT", "8+BT"), ("1B-8+BT", "8+BT"), ("1B--5BT", "pretraining"),
                                       ("-5BT", "size"), ("1B-320XT", "320XT"), ("abc", "abc"),
                                       ("1B-160BT-0+0BT", "0+0BT"), ("1B-160BT-100Kep0", "100Kep0"),
                                       ("1B-160BT-1Kep1-1Kep1-1Kep1", "too many"), ("1B-1.5T", "1.5T")])
def test_malformed_names_name_the_bad_part(bad, part):
    with pytest.raises(ConfigError) as e:
        parse_config(bad)
    assert part in str(e.value) and "\n" not in str(e.value)


def test_rl_without_sft_is_rejected():
    with pytest.raises(ConfigError, match="RL without SFT"):
        config_from_flags("1B", "160BT", rl="100Kep8")
    with pytest.raises(ConfigError, match="RL without SFT"):
        RunConfig(size=10**9, pretrain=10**9, rl_examples=10, rl_epochs=1)


def test_config_distance_weighs_stage_presence_over_budgets():
    from dynsim.config import config_distance

    base, sft = parse_config("1B-160BT"), parse_config("1B-160BT-100Kep1")
    assert config_distance(base, base) == 0 and config_distance(base, sft) == config_distance(sft, base) == 20.0
    assert config_distance(base, parse_config("4B-20BT")) < config_distance(base, sft)  # far budgets, same stages
    assert config_distance(base, parse_config("1B-20of160BT")) == pytest.approx(5 + math.log((160e9 + 1) / (20e9 + 1)))


def test_names_without_a_data_set_mean_what_they_always_did():
    """Every name of the language before the SFT data set parses to the default data and formats unchanged."""
    for name in EXAMPLES[:9]:
        cfg = parse_config(name)
        assert cfg.sft_data == "" and format_config(cfg) == name
    assert parse_config("1B-160BT-100Kep1") == RunConfig(10**9, 160 * 10**9, sft_examples=100_000, sft_epochs=1)


def test_the_sft_data_set_is_part_of_the_run():
    tuned = parse_config("1B-1.43of3.09TT-mnli:393Kep3")
    assert (tuned.sft_data, tuned.sft_examples, tuned.sft_epochs) == ("mnli", 393_000, 3)
    assert tuned != parse_config("1B-1.43of3.09TT-paws:393Kep3") != parse_config("1B-1.43of3.09TT-393Kep3")
    assert tuned.parent() == parse_config("1B-1.43of3.09TT")  # the base model has no SFT data
    assert tuned.replace(sft_examples=0, sft_epochs=0) == tuned.parent()  # cutting the stage takes its data along
    assert tuned.replace(rl_examples=10, rl_epochs=2).name == "1B-1.43of3.09TT-mnli:393Kep3-10ep2"
    assert config_from_flags("1B", "1.43of3.09TT", sft="mnli:393Kep3") == tuned


@settings(deadline=None)
@given(configs(), data_names, data_names)
def test_flags_take_the_data_set_as_names_do(cfg, data, other):
    if not cfg.has_sft:
        return
    from dynsim.config import config_distance, format_sft, format_size

    tuned = cfg.replace(sft_data=data, cpt_replay=0, cpt_domain=0, rl_examples=0, rl_epochs=0)
    size, pretrain = format_size(tuned.size), tuned.name.split("-")[1]
    assert config_from_flags(size, pretrain, sft=format_sft(data, tuned.sft_examples, tuned.sft_epochs)) == tuned
    if other != data:
        assert config_distance(tuned, tuned.replace(sft_data=other)) == 10.0  # another task altogether


@pytest.mark.parametrize("bad, part", [("1B-3TT-MNLI:6Kep3", "MNLI"), ("1B-3TT-:6Kep3", "data name ''"),
                                       ("1B-3TT-mn.li:6Kep3", "mn.li"), ("1B-3TT-a:b:6Kep3", "a:b"),
                                       ("1B-3TT-mnli:6Kep3-gsm:1Kep1", "only the SFT stage"),
                                       ("1B-3TT-mnli:", "bad SFT budget"), ("1B-3TT-mnli:6K", "6K")])
def test_bad_data_spellings_are_one_line_errors(bad, part):
    with pytest.raises(ConfigError) as e:
        parse_config(bad)
    assert part in str(e.value) and "\n" not in str(e.value)


@settings(deadline=None)
@given(st.text(min_size=1, max_size=12).filter(lambda t: t == t.strip() and not re.fullmatch(r"[a-z0-9_]+", t)))
def test_any_other_data_name_is_refused_in_one_line(data):
    for make in (lambda: RunConfig(10**9, 10**12, sft_examples=10, sft_epochs=1, sft_data=data),
                 lambda: config_from_flags("1B", "1TT", sft=f"{data}:10ep1")):
        with pytest.raises(ConfigError) as e:
            make()
        assert "\n" not in str(e.value)


def test_sft_data_needs_an_sft_stage():
    with pytest.raises(ConfigError, match="without an SFT stage"):
        RunConfig(10**9, 10**12, sft_data="mnli")


# -- the stage table -----------------------------------------------------------------------------------------
def test_every_count_of_a_run_belongs_to_pretraining_or_one_stage():
    from dynsim.config import AFTER_PT, CONFIG_COUNTS, FIELDS, STAGE_FIELDS, UNIT

    assert len(STAGE_FIELDS) == len(set(STAGE_FIELDS))  # no field claimed by two stages
    assert set(CONFIG_COUNTS) | {"sft_data"} == set(FIELDS)
    assert all(len(s.fields) == len(s.units) == 2 and s.budget in ("mix", "examples") for s in AFTER_PT)
    assert set(UNIT) == set(CONFIG_COUNTS)


@settings(deadline=None)
@given(configs())
def test_a_run_peels_back_one_stage_at_a_time(cfg):
    """parent() drops the last stage the table finds; the chain ends at the PT checkpoint after one step per
    stage run, and upstream() is the first model in it that no post-training stage touched."""
    from dynsim.config import AFTER_PT, STAGES, TUNED

    chain = [cfg]
    while chain[-1].parent() is not None:
        chain.append(chain[-1].parent())
    assert [c.stage() for c in chain] == [s for s in reversed(STAGES) if cfg.has(s)]
    assert chain[-1] == cfg.without(*(s.key for s in AFTER_PT))
    assert cfg.upstream() == next(c for c in chain if not c.post_trained)
    assert cfg.post_trained == any(cfg.has(k) for k in TUNED)
    rebuilt = chain[-1]  # adding each stage's counts back, in order, gives the run again
    for stage in AFTER_PT:
        if stage.ran(cfg):
            rebuilt = rebuilt.with_stage(stage.key, stage.counts(cfg))
    assert rebuilt.replace(sft_data=cfg.sft_data) == cfg


def test_only_the_files_that_hold_a_stage_s_science_or_training_name_its_fields():
    """The goal of the stage table: a new stage is its entry in config.py, its formula (forward.py) and prior
    (calibrate/model.py), its loop (train_runs/train.py, stages.py) and its recipe. Every other layer reads the
    table, so none of them may name a stage's own fields in code (docstrings aside); the testbed loaders and the
    figures about one stage are about that stage."""
    import ast
    from pathlib import Path

    from dynsim.config import STAGE_FIELDS, STAGES

    own = set(STAGE_FIELDS) | {f"has_{s}" for s in STAGES}
    allowed = {"dynsim/config.py", "dynsim/forward.py", "calibrate/model.py", "train_runs/train.py",
               "train_runs/stages.py", "calibrate/testbeds.py"}
    root = Path(__file__).resolve().parents[1]
    named = {}
    for package in ("dynsim", "calibrate", "train_runs", "paper_figs"):
        for path in sorted((root / package).glob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel in allowed or (package == "paper_figs" and path.name not in ("__init__.py", "common.py", "cli.py")):
                continue
            tree = ast.parse(path.read_text())
            names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
            names |= {n.arg for n in ast.walk(tree) if isinstance(n, ast.keyword) and n.arg}
            names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            if names & own:
                named[rel] = sorted(names & own)
    assert not named, named


def test_a_marked_stage_is_read_by_its_mark(monkeypatch):
    """A stage whose part has another's shape carries a mark (as DPO after SFT would: 'dpo50Kep2'). Here RL is
    given one, and its names read and write through the same parse and format."""
    import dataclasses

    from dynsim import config

    marked = dataclasses.replace(config.STAGE["rl"], mark="grpo", follows="")
    table = tuple(marked if s.key == "rl" else s for s in config.AFTER_PT)
    monkeypatch.setattr(config, "AFTER_PT", table)
    monkeypatch.setattr(config, "STAGE", {s.key: s for s in table})
    assert config._readable(table) and not config._readable((*table[:-1], dataclasses.replace(marked, mark="")))
    run = parse_config("1B-160BT-100Kep1-grpo100Kep8")
    assert (run.sft_examples, run.rl_examples, run.rl_epochs) == (100_000, 100_000, 8)
    assert run.name == "1B-160BT-100Kep1-grpo100Kep8"
    assert config_from_flags("1B", "160BT", sft="100Kep1", rl="100Kep8") == run  # a flag says the stage itself
    with pytest.raises(TypeError):  # a misspelt stage is a caller's bug, not a run without that stage
        config_from_flags("1B", "160BT", sft="100Kep1", lr="100Kep8")
    assert parse_config("1B-160BT-grpo2Kep4").stage() == "rl"  # no longer read as SFT: the mark says which
    assert parse_config("1B-160BT-grpo:2Kep4").sft_data == "grpo"  # a data name is no mark: ':' follows
    with pytest.raises(ConfigError, match="the RL field 'grpo2Kep1' is out of order or given twice"):
        parse_config("1B-160BT-grpo1Kep1-grpo2Kep1")
