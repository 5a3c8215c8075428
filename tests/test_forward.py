"""The forward model: one formula serves numpy (prediction) and pytensor (likelihood); metrics behave."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dynsim import fastpath, forward
from dynsim.config import parse_config

TABLE = forward.TaskTable(["HellaSwag", "Winogrande", "Upstream_avg", "ID_avg", "OOD_avg"],
                          ["upstream", "upstream", "upstream_avg", "ID", "OOD"],
                          [[0.25], [0.5], [0.0], [0.0], [0.0, 0.333, 0.0, 0.5]])
PARAMS = dict(E=1.8, A=0.35, alpha=0.34, B=0.25, beta=0.3, anneal_gap=0.05, forget_max=0.3, forget_tokens=5e9,
              forget_reach=[0.3, 0.8], replay_protect=15.0, domain_tokens=5e9, sft_gain=3.0, sft_scale=3e4,
              rl_gain=1.0, rl_scale=2e5, ot_sensitivity=0.1, epoch_decline=0.2, greedy_sharpness=[1.5, 1.3], maj_threshold=[0.3, 0.3],
              ability0=[-5.0, -4.0], loss_slope=[2.0, 1.5], domain_weight=[0.8, 0.2], item_spread=[3.0, 3.0],
              up_slope=[3.0, 2.0], up_mid=[2.5, 2.2], up_ceiling=[0.9, 0.85])


def numpy_params(draws=1, **over):
    p = PARAMS | over
    return {k: np.tile(np.atleast_1d(np.asarray(v, float)), (draws, 1)) for k, v in p.items()}


def run(cfgs, tasks, metrics, **over):
    return forward.predict(numpy_params(**over), forward.design(cfgs, tasks, metrics, TABLE))[0]


def test_numpy_and_pytensor_agree():
    import pytensor.tensor as pt
    cfgs = [parse_config(n) for n in ["1B-160BT", "1B-20of160BT", "1B-80BT-8+42BT-100Kep1", "4B-80BT-0+50BT-100Kep3-100Kep8"]]
    obs = [(c, t, m) for c in cfgs for t, m in [("HellaSwag", "0shot_acc"), ("Upstream_avg", "0shot_acc"),
                                                ("ID_avg", "greedy_pass@1"), ("OOD_avg", "maj@16"), ("ID_avg", "pass@16")]]
    x = forward.design(*map(list, zip(*obs)), TABLE)
    expected = forward.predict(numpy_params(), x, np)[0]
    symbolic = {k: pt.as_tensor_variable(np.asarray(v, float)) for k, v in PARAMS.items()}
    got = forward.predict(symbolic, x, pt).eval()
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    assert np.all((expected >= 0) & (expected <= 1))


def test_observations_asking_for_different_metrics_together_get_what_each_gets_alone():
    """predict evaluates each metric kind once over the rows asking for it (k and task components may differ
    within a kind): the values are those of one row at a time, in numpy and pytensor alike."""
    import pytensor.tensor as pt
    cfgs = [parse_config(n) for n in ["1B-160BT-8+42BT-100Kep1", "4B-80BT-0+50BT-100Kep3-100Kep8"]]
    obs = [(c, t, m) for c in cfgs for t in ("ID_avg", "OOD_avg")
           for m in ("greedy_pass@1", "mean@1", "pass@4", "pass@16", "maj@8", "maj@16")]
    obs += [(cfgs[0], "HellaSwag", "0shot_acc"), (cfgs[1], "Upstream_avg", "0shot_acc")]
    together = run(*map(list, zip(*obs)))
    alone = [run([c], [t], [m])[0] for c, t, m in obs]
    np.testing.assert_allclose(together, alone, rtol=1e-12)
    symbolic = {k: pt.as_tensor_variable(np.asarray(v, float)) for k, v in PARAMS.items()}
    got = forward.predict(symbolic, forward.design(*map(list, zip(*obs)), TABLE), pt).eval()
    np.testing.assert_allclose(got, together, rtol=1e-10)


def test_downstream_ability_feels_its_kinds_share_of_cpt_forgetting():
    """μ falls by loss_slope × forget_reach[kind] × the general-text loss CPT added (which upstream readouts see
    whole); a posterior without forget_reach (fitted before it existed) feels all of it."""
    cfgs = [parse_config(n) for n in ["1B-160BT-0+50BT-100Kep1", "1B-160BT-8+42BT-100Kep1", "1B-160BT-100Kep1"]]
    tasks = ["ID_avg", "OOD_avg", "ID_avg"]
    x = forward.design(cfgs, tasks, ["greedy_pass@1"] * 3, TABLE)
    kept = numpy_params(forget_max=0.0)
    forgot = forward.general_loss(numpy_params(), x, np)[0] - forward.general_loss(kept, x, np)[0]
    assert forgot[0] > forgot[1] > 0 and forgot[2] == 0  # replay protects; no CPT, no forgetting
    reach = np.array([PARAMS["forget_reach"][forward.KINDS.index(TABLE.kind(t))] for t in tasks])
    slope = np.array([PARAMS["loss_slope"][TABLE.downstream.index(t)] for t in tasks])
    drop = forward.ability(kept, x, np)[0] - forward.ability(numpy_params(), x, np)[0]
    np.testing.assert_allclose(drop, slope * reach * forgot, rtol=1e-12)
    whole = {k: v for k, v in numpy_params().items() if k != "forget_reach"}
    np.testing.assert_allclose(forward.ability(kept, x, np)[0] - forward.ability(whole, x, np)[0], slope * forgot,
                               rtol=1e-12)


def test_pass_at_k_grows_with_k_and_bounds_the_others():
    c = [parse_config("1B-160BT-8+42BT-100Kep1")] * 5
    v = run(c, ["ID_avg"] * 5, ["mean@1", "pass@1", "pass@4", "pass@16", "maj@16"])
    assert v[0] == pytest.approx(v[1])
    assert v[1] < v[2] < v[3] and v[4] < v[3]


def test_chance_floor_and_upstream_average():
    c = [parse_config("1B-160BT")] * 3
    hs, wg, avg = run(c, ["HellaSwag", "Winogrande", "Upstream_avg"], ["0shot_acc"] * 3)
    assert hs > 0.25 and wg > 0.5 and avg == pytest.approx((hs + wg) / 2)
    weak = run([parse_config("1B-160BT-100Kep1")], ["OOD_avg"], ["greedy_pass@1"], ability0=[-30.0, -30.0])
    assert weak[0] == pytest.approx((0.333 + 0.5) / 4, abs=1e-3)  # guessing on the closed-form components


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([10, 20, 40, 80, 160, 320]), st.sampled_from([20, 40, 80, 160, 320]))
def test_more_pretraining_lowers_loss_and_raises_upstream(a, b):
    lo, hi = sorted((a, b))
    cfgs = [parse_config(f"1B-{lo}BT"), parse_config(f"1B-{hi}BT")]
    acc = run(cfgs, ["HellaSwag"] * 2, ["0shot_acc"] * 2)
    assert acc[0] <= acc[1]


def test_replay_mitigates_forgetting_and_intermediate_is_worse():
    names = ["1B-160BT", "1B-160BT-0+50BT", "1B-160BT-8+42BT", "1B-40BT", "1B-40of160BT"]
    acc = run([parse_config(n) for n in names], ["HellaSwag"] * 5, ["0shot_acc"] * 5)
    assert acc[1] < acc[2] < acc[0] and acc[4] < acc[3]


def test_unknown_metric_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown metric"):
        forward.metric_kind("bleu")


@pytest.mark.parametrize("name", ["evolm", "gadre2024"])
def test_predict_many_matches_predict_over_a_grid(name):
    """The fast predictive (tabulated in ability, float32, threaded draw blocks) gives the exact forward model's
    numbers to 0.03 points (its docstring's promise) on every kind of observation, with many observations per (task, metric) so the
    tabulated path is the one taken, and a few so the exact one is."""
    from dynsim import posterior
    post = posterior.load(posterior.bundled_path(name))
    sizes = sorted({c.size for c in post.observed})
    grid = [c.replace(size=n, pretrain=int(c.pretrain * f)) for c in post.observed for n in sizes[:3] for f in (0.5, 1, 2)]
    obs = [(c, t, m) for c in grid for t in post.table.names for m in post.meta["observed"]["metrics"]
           if (post.table.kind(t) in forward.KINDS) == (forward.metric_kind(m)[0] not in ("cloze", "loss"))
           and (m == "loss") == (post.table.kind(t) == "text")]
    obs += obs[:3]
    x = post.design(*map(list, zip(*obs)))
    p = {k: v[:300] for k, v in post.parameters(x).items()}
    exact, fast = forward.predict(p, x, np), fastpath.predict_many(p, x, block=128)
    assert fast.dtype == np.float32 and fast.shape == exact.shape == (300, len(obs))
    assert np.abs(fast - exact).max() < 3e-4, np.abs(fast - exact).max()
    down = np.isin(x["kind"], forward.KINDS)
    metrics = {x["metric"][i] for i in np.flatnonzero(down)}
    assert down.any() == bool(post.table.downstream)  # Gadre's testbed: losses and upstream accuracies only
    assert len(obs) > 64 * len(metrics) * len(post.table.downstream)  # every downstream (task, metric) is tabulated


@pytest.mark.parametrize("k", [1, 4, 16, 64])
def test_majority_vote_is_the_binomial_sum_at_every_k_and_success_rate(k):
    """maj@k's per-item probability against the binomial sum in exact rational arithmetic, at success rates up to
    1 − 1e-9 (where (1 − q)^k underflows float64 at k = 64), in float64 and float32 (numpy) and pytensor."""
    from fractions import Fraction
    from math import comb

    import pytensor.tensor as pt

    q = np.array([1e-9, 0.01, 0.2, 0.37, 0.5, 0.81, 0.99, 1 - 1e-9])[:, None]
    thresh = np.tile([0.25, 0.5], (len(q), 1))  # two thresholds per success rate
    q2 = np.broadcast_to(q, thresh.shape)
    step = lambda i, t: 1 / (1 + np.exp(-(i - t * k - 0.5) / 0.3))  # noqa: E731
    exact = np.array([[float(sum(Fraction(comb(k, i)) * Fraction(float(qq)) ** i * (1 - Fraction(float(qq))) ** (k - i)
                                 * Fraction(float(step(i, t))) for i in range(k + 1)))
                       for qq, t in zip(qr, tr)] for qr, tr in zip(q2, thresh)])
    np.testing.assert_allclose(forward._binom_tail(np, q2, k, thresh), exact, atol=1e-12)
    f32 = forward._binom_tail(np, q2.astype(np.float32), k, thresh.astype(np.float32))
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32, exact, atol=2e-6)
    compiled = forward._binom_tail(pt, pt.as_tensor(q2), k, pt.as_tensor(thresh)).eval()
    np.testing.assert_allclose(compiled, exact, atol=1e-8)  # the compiled path clips q to [1e-9, 1 − 1e-9]


def test_cloze_loss_slope_is_the_links_derivative():
    """The slope that carries a run's relative loss deviation into its cloze numbers is −∂(accuracy)/∂(log loss)
    of the link (central differences in log loss), for a task and an average; 0 for downstream numbers; the same
    in pytensor."""
    import pytensor.tensor as pt
    cfgs = [parse_config(n) for n in ["1B-160BT", "1B-20of160BT", "4B-80BT-0+50BT-100Kep3-100Kep8"]]
    obs = [(c, t, m) for c in cfgs for t, m in [("HellaSwag", "0shot_acc"), ("Upstream_avg", "0shot_acc"),
                                                ("ID_avg", "greedy_pass@1")]]
    x = forward.design(*map(list, zip(*obs)), TABLE)
    p = numpy_params()
    slope = forward.cloze_loss_slope(p, x, np)[0]
    up = np.flatnonzero(~np.isin(x["kind"], forward.KINDS))
    xu = x.subset(up)
    loss, h = forward.upstream_loss(p, xu, np), 1e-5
    numeric = (forward.upstream_metric(p, xu, np, loss=loss * np.exp(-h))
               - forward.upstream_metric(p, xu, np, loss=loss * np.exp(h))) / (2 * h)
    np.testing.assert_allclose(slope[up], numeric[0], rtol=1e-6)
    assert (slope[up] > 0).all() and (slope[np.isin(x["kind"], forward.KINDS)] == 0).all()
    symbolic = {k: pt.as_tensor_variable(np.asarray(v, float)) for k, v in PARAMS.items()}
    np.testing.assert_allclose(forward.cloze_loss_slope(symbolic, x, pt).eval(), slope, rtol=1e-10)


def test_many_upstream_tasks_get_their_average_predicted_as_the_mean_of_their_links():
    """Gadre et al.'s per-task table (46 evaluations, no average) gains avg46, predicted as the tasks' mean."""
    from calibrate.model import observations
    from dynsim import results

    obs = observations(results.from_gadre_csv(per_task=True))
    table = obs.table
    assert table.kind("avg46") == "upstream_avg" and len(table.upstream) == 46
    rng = np.random.default_rng(0)
    n_up = len(table.upstream)
    p = dict(E=np.full((3, 1), 1.8), A=np.full((3, 1), 0.3), alpha=np.full((3, 1), 0.3), B=np.full((3, 1), 0.3),
             beta=np.full((3, 1), 0.3), anneal_gap=np.zeros((3, 1)), forget_max=np.zeros((3, 1)),
             forget_tokens=np.ones((3, 1)), replay_protect=np.ones((3, 1)),
             up_slope=rng.uniform(1, 4, (3, n_up)), up_mid=rng.uniform(2, 4, (3, n_up)),
             up_ceiling=rng.uniform(0.6, 1.0, (3, n_up)))
    cfg = obs.configs[0]
    x = forward.design([cfg] * (n_up + 1), table.upstream + ["avg46"], ["acc"] * (n_up + 1), table,
                       scales=obs.scales)
    pred = forward.predict(p, x, np)
    np.testing.assert_allclose(pred[:, -1], pred[:, :-1].mean(axis=1), rtol=1e-12)


def test_size_beyond_loss_moves_ability_by_its_log_size_term():
    """At a fixed design, size_ability adds size_ability[kind]·log(N/N_ref) to μ (N_ref 1B: none at 1B)."""
    cfgs = [parse_config(n) for n in ["4B-80BT-100Kep1", "4B-80BT-8+42BT-100Kep1-100Kep8", "1B-80BT-100Kep1"]]
    x = forward.design(cfgs, ["ID_avg", "OOD_avg", "ID_avg"], ["greedy_pass@1"] * 3, TABLE)
    base = forward.ability(numpy_params(), x, np)[0]
    sized = forward.ability(numpy_params(size_ability=[0.4, 0.2]), x, np)[0]
    np.testing.assert_allclose(sized - base, np.array([0.4, 0.2, 0.4]) * np.log(np.array([4.0, 4.0, 1.0])), atol=1e-12)


def test_smoothmax_form_adds_at_k_1_tends_to_the_larger_term_and_lets_a_larger_model_gain_more_from_data():
    """(a^k + b^k)^(1/k): the Chinchilla sum at k = 1, the larger term as k grows; in between, doubling the data
    lowers a data-limited (large) model's loss more than a size-limited (small) one's, which the sum cannot."""
    import pytensor.tensor as pt

    cfgs = [parse_config(n) for n in ["0.5B-40BT", "0.5B-80BT", "4B-40BT", "4B-80BT", "1B-20of160BT"]]
    x = {form: forward.design(cfgs, ["HellaSwag"] * 5, ["0shot_acc"] * 5, TABLE, form=form)
         for form in ("chinchilla", "smoothmax")}
    loss = lambda form, **over: forward.pretrain_loss(numpy_params(**over), x[form], np)[0]  # noqa: E731
    np.testing.assert_allclose(loss("smoothmax", smoothmax_k=1.0), loss("chinchilla"), rtol=1e-12)
    size = PARAMS["A"] * (np.array([0.5, 0.5, 4.0, 4.0, 1.0]) * 1e9 / forward.N_REF) ** -PARAMS["alpha"]
    data = PARAMS["B"] * (np.array([40, 80, 40, 80, 20]) * 1e9 / forward.D_REF) ** -PARAMS["beta"]
    anneal = np.array([0, 0, 0, 0, PARAMS["anneal_gap"] * 0.5 * (1 + np.cos(np.pi / 8))])
    np.testing.assert_allclose(loss("smoothmax", smoothmax_k=60.0), PARAMS["E"] + np.maximum(size, data) + anneal,
                               rtol=2e-3)
    additive, smooth = loss("chinchilla"), loss("smoothmax", smoothmax_k=3.0)
    assert np.isclose(additive[0] - additive[1], additive[2] - additive[3])  # the sum: one drop for every size
    assert smooth[2] - smooth[3] > 1.5 * (smooth[0] - smooth[1])
    symbolic = {k: pt.as_tensor_variable(np.asarray(v, float)) for k, v in (PARAMS | {"smoothmax_k": 3.0}).items()}
    np.testing.assert_allclose(forward.pretrain_loss(symbolic, x["smoothmax"], pt).eval(), smooth, rtol=1e-10)


def test_sft_on_a_named_data_set_adds_that_pairs_gain_and_nothing_else():
    """Where runs name their SFT data (Amuro & Char), each (task, data set) pair has its own gain in place of
    sft_gain; runs on the unnamed default data read sft_gain as before, whether or not data_gain exists."""
    table = forward.TaskTable(["mnli", "paws"], ["ID", "ID"], [[1 / 3], [0.5]], sft_datasets=["mnli", "paws"])
    cfgs = [parse_config(n) for n in ["1B-1TT-mnli:6Kep3", "1B-1TT-paws:6Kep3", "1B-1TT-6Kep3", "1B-1TT"]]
    obs = [(c, t) for c in cfgs for t in ("mnli", "paws")]
    x = forward.design([c for c, _ in obs], [t for _, t in obs], ["greedy_pass@1"] * len(obs), table)
    gain = np.array([[2.0, -0.5, 0.3, 1.5]])  # per (task, data set), row-major: mnli|mnli, mnli|paws, paws|mnli, ...
    p = numpy_params(ability0=[-3.0, -2.0], loss_slope=[2.0, 2.0], domain_weight=[0.0, 0.0], item_spread=[1.0, 1.0])
    without = forward.ability(p, x, np)[0]
    mu = forward.ability(p | {"data_gain": gain}, x, np)[0]
    np.testing.assert_allclose(mu[4:], without[4:], rtol=1e-12)  # unnamed data and no SFT: unchanged
    base = mu[6:8]  # the pretrained model
    saturation = 1 - np.exp(-6e3 * 3 / PARAMS["sft_scale"])
    overtrained = (1 + 1e12 / 1e9 / forward.TPP_OPTIMAL) ** -PARAMS["ot_sensitivity"]
    expected = base[[0, 1, 0, 1]] + overtrained * saturation * gain[0, [0, 2, 1, 3]]  # rows are (data, task)
    np.testing.assert_allclose(mu[:4], expected, rtol=1e-10)
    with pytest.raises(ValueError, match="unknown SFT data set 'tulu'"):
        forward.design([parse_config("1B-1TT-tulu:6Kep3")], ["mnli"], ["greedy_pass@1"], table)
    import pytensor.tensor as pt  # the likelihood's graph computes the same
    numeric = forward.predict(p | {"data_gain": gain}, x, np)[0]
    symbolic = {k: pt.as_tensor_variable(v[0] if v.shape[1] > 1 or k in ("ability0", "data_gain") else v[0, 0])
                for k, v in (p | {"data_gain": gain}).items()}
    np.testing.assert_allclose(forward.predict(symbolic, x, pt).eval(), numeric, rtol=1e-10)
