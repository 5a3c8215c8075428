"""The run-config language: parse ⇄ format are exact inverses; malformed names get one clear error."""

import math

import pytest
from hypothesis import given, strategies as st

from dynsim.config import ConfigError, RunConfig, config_from_flags, format_config, parse_config

EXAMPLES = ["1B-160BT-8+42BT-100Kep1-100Kep8", "1B-160BT-0+50BT", "0.5B-10BT", "1B-160BT-100Kep1",
            "1B-160BT-1.6+48.4BT", "125M-4MT", "0.3M-4MT-1+3MT-2Kep1-2Kep4", "4B-320BT", "1B-20of160BT-100Kep1"]


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


@st.composite
def configs(draw):
    fields = dict(size=draw(counts), pretrain=draw(counts))
    if draw(st.booleans()):
        fields["cpt_replay"], fields["cpt_domain"] = draw(st.integers(0, 10**12)), draw(counts)
    if draw(st.booleans()):
        fields["sft_examples"], fields["sft_epochs"] = draw(st.integers(1, 10**7)), draw(st.integers(1, 50))
        if draw(st.booleans()):
            fields["rl_examples"], fields["rl_epochs"] = draw(st.integers(1, 10**7)), draw(st.integers(1, 50))
    if draw(st.booleans()):
        fields["pretrain_schedule"] = fields["pretrain"] + draw(counts)
    return RunConfig(**fields)


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
