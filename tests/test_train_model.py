"""The LLaMA-style model: sizing, attention variants, KV-cache generation."""

import pytest
import torch

from train_runs.model import GPT, ModelConfig, autocast_for, config_for_params


@pytest.mark.parametrize("target", [100_000, 200_000, 300_000, 600_000, 1_000_000, 5_000_000])
def test_config_for_params_hits_the_target_size(target):
    cfg = config_for_params(target, vocab_size=512)
    assert abs(cfg.n_params() / target - 1) < 0.02
    assert GPT(cfg).n_params() == cfg.n_params()  # the closed form counts what torch builds
    assert 2 * cfg.d_model <= cfg.ffn_hidden <= 4 * cfg.d_model


def test_config_for_params_rejects_impossible_sizes():
    with pytest.raises(ValueError, match="too small"):
        config_for_params(5_000)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="n_head"):
        ModelConfig(d_model=64, n_head=3)
    with pytest.raises(ValueError, match="n_kv_head"):
        ModelConfig(d_model=64, n_head=4, n_kv_head=3)


def naive_greedy(model, prompt, n, eos, autocast):
    """Reference decoder: full forward pass on the whole sequence for every new token (no cache)."""
    seq, out = list(prompt), []
    for _ in range(n):
        with autocast_for("cpu", autocast):
            nxt = int(model(torch.tensor([seq]))[0, -1].float().argmax())
        if nxt == eos:
            break
        out.append(nxt)
        seq.append(nxt)
    return out


@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
@pytest.mark.parametrize("autocast", [False, True])
def test_cached_batched_generation_matches_naive_decoding(n_kv_head, autocast):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=64, n_layer=2, d_model=32, n_head=4, n_kv_head=n_kv_head, max_seq_len=64)
    model = GPT(cfg).eval()
    with torch.no_grad():  # a sharper random model, so greedy paths branch and are not one repeated token
        model.embed.weight.mul_(40)
    prompts = [[5, 9, 3, 7, 1, 2, 8], [11, 4], [6], [3, 3, 3, 9]]  # different lengths: left padding is exercised
    got = model.generate(prompts, 12, eos_id=0, autocast=autocast)
    for p, g in zip(prompts, got):
        assert g == naive_greedy(model, p, 12, 0, autocast)
    assert len({tuple(g) for g in got}) > 1


def test_sampling_is_reproducible_with_a_generator_and_varies_without_temperature_zero():
    torch.manual_seed(1)
    model = GPT(ModelConfig(vocab_size=64, n_layer=1, d_model=32, n_head=2, max_seq_len=64)).eval()
    prompts = [[1, 2, 3]] * 8
    a = model.generate(prompts, 10, 0, temperature=1.0, generator=torch.Generator().manual_seed(5))
    b = model.generate(prompts, 10, 0, temperature=1.0, generator=torch.Generator().manual_seed(5))
    assert a == b
    assert len({tuple(x) for x in a}) > 1  # 8 samples of a near-uniform model are not all alike


def test_generation_stops_at_eos_and_respects_max_len():
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=16, n_layer=1, d_model=16, n_head=1, max_seq_len=32)).eval()
    with torch.no_grad():  # blocks add nothing; every token's state points along dim 0, where token 7 is largest
        for block in model.blocks:
            block.attn.out.weight.zero_()
            block.mlp.down.weight.zero_()
        model.embed.weight.zero_()
        model.embed.weight[:, 0] = 1.0
        model.embed.weight[7, 0] = 50.0
    assert model.generate([[1, 2]], 5, eos_id=7) == [[]]
    with pytest.raises(ValueError, match="max_seq_len"):
        model.generate([[1] * 30], 5, eos_id=7)
    with pytest.raises(ValueError, match="non-empty"):
        model.generate([[]], 5, eos_id=7)


def test_training_step_reduces_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=32, n_layer=2, d_model=32, n_head=2, max_seq_len=32))
    x = torch.randint(0, 32, (4, 17))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        logits = model(x[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 32), x[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 1.0


def test_named_shapes_are_the_sizes_they_are_named_for():
    """recipes/llama.toml's shapes per size (GPT-3 Small and Medium, TinyLlama-1.1B) come within the slack of the
    run's size; a size the recipe has no shape for is refused instead of training a neighbour's shape."""
    from dynsim.config import parse_config
    from dynsim.errors import UserError
    from train_runs.recipe import load_recipe
    from train_runs.model import NAMED_SHAPE_SLACK, model_config

    for size, layers in (("125M", 12), ("350M", 24), ("1B", 22)):
        config = parse_config(f"{size}-20BT")
        shape = model_config(config, load_recipe("llama", config.size))
        assert shape.n_layer == layers and shape.vocab_size == 32000 and shape.max_seq_len == 2048
        assert 1 / NAMED_SHAPE_SLACK < shape.n_params() / config.size < NAMED_SHAPE_SLACK
    config = parse_config("0.2B-20BT")
    with pytest.raises(UserError, match="name a size the recipe has a shape for"):
        model_config(config, load_recipe("llama", config.size))
