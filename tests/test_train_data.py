"""Corpora, tokenizer, token streams, CPT mixture counts, and the no-leakage guarantee."""

import numpy as np
import pytest

from dynsim.config import parse_config
from train_runs import data, stages, tasks


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("DYNSIM_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def corpus():
    return data.load_general_corpus("sample")


@pytest.fixture(scope="module")
def tok(corpus):
    return data.get_tokenizer(corpus, 512)


def test_sample_corpus_splits_into_disjoint_train_and_heldout(corpus):
    assert len(corpus.train_docs) > 2000 and 60 < len(corpus.eval_docs) < 300
    assert not set(corpus.train_docs) & set(corpus.eval_docs)
    assert all(data.is_heldout(d) for d in corpus.eval_docs)


def test_tokenizer_splits_digits_and_round_trips(tok):
    text = "In 1984 there were 12,345 cats. Q: Ava has 3 pens. A: 3 + 4 = 7. #### 7"
    assert tok.decode(tok.encode(text).ids) == text
    pieces = tok.encode(" 1984").tokens
    assert [p.lstrip("Ġ") for p in pieces] == ["1", "9", "8", "4"]  # one digit per token
    assert tok.get_vocab_size() == 512 and tok.token_to_id(data.EOS) is not None


def test_tokenizer_is_cached_by_content(corpus, tok):
    again = data.get_tokenizer(corpus, 512)
    assert again.to_str() == tok.to_str()
    assert len(list((data.cache_dir() / "tokenizer").glob("*.json"))) == 1


def test_a_users_text_file_is_a_corpus(tmp_path):
    paragraphs = [f"Paragraph {i} talks about\nthe number {i} and its friends." for i in range(100)]
    path = tmp_path / "mine.txt"
    path.write_text("\n\n".join(paragraphs))
    c = data.load_general_corpus(str(path))
    assert len(c.train_docs) + len(c.eval_docs) == 100
    assert "\n" not in c.train_docs[0]


def test_missing_corpus_and_tiny_corpus_raise_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="neither"):
        data.load_general_corpus(str(tmp_path / "nope.txt"))
    (tmp_path / "tiny.txt").write_text("one line\nanother line\n")
    with pytest.raises(ValueError, match="only 2 documents"):
        data.load_general_corpus(str(tmp_path / "tiny.txt"))
    with pytest.raises(FileNotFoundError, match="install_corpus.sh"):
        data.wordnet_documents(tmp_path)


def test_wordnet_extraction_when_installed():
    if not (data.WORDNET_DIR / "data.noun").exists():
        pytest.skip("wordnet-base not installed (bash train_runs/install_corpus.sh)")
    docs = data.wordnet_documents()
    assert len(docs) > 100_000 and 8e6 < sum(map(len, docs)) < 2e7
    assert any(d.startswith("dog, domestic dog, Canis familiaris (noun):") for d in docs)


def test_token_stream_windows_are_consecutive_and_wrap():
    s = data.TokenStream(np.arange(100, dtype=np.uint16), block_size=8, offset=0)
    w = s.windows([0, 1])
    assert w.shape == (2, 9) and list(w[0]) == list(range(9)) and list(w[1]) == list(range(8, 17))
    assert s.windows([s.span // 8 + 1]).shape == (1, 9)  # wraps around instead of running off the end
    with pytest.raises(ValueError, match="shorter than one block"):
        data.TokenStream(np.arange(5, dtype=np.uint16), block_size=8)


def test_cpt_mixture_is_exactly_the_named_token_counts():
    cfg = parse_config("0.3M-4MT-1+3MT")
    T = 128
    n_r, n_d = round(cfg.cpt_replay / T), stages.n_sequences(cfg.cpt_domain, T)
    source = stages.cpt_schedule(n_r, n_d, seed=0)
    assert (source == 0).sum() * T == pytest.approx(1_000_000, abs=T / 2)
    assert (source == 1).sum() * T == pytest.approx(3_000_000, abs=T / 2)
    # shuffled: every quarter of the stage sees about the 1:3 mix, not all replay first
    for quarter in np.array_split(source, 4):
        assert 0.70 < quarter.mean() < 0.80


def test_sft_loss_mask_covers_exactly_the_answer(tok):
    item = tasks.make_items("arith", "train", 1)[0]
    eos = tok.token_to_id(data.EOS)
    ids, n_prompt = stages.encode_example(tok, item, eos, 256)
    x, mask = stages.padded_batch([ids, ids[:5]], [n_prompt, 2], eos, "cpu")
    targets = x[0, 1:][mask[0]].tolist()
    assert targets[-1] == eos
    assert tok.decode(targets[:-1]) == item.completion
    assert mask[1].sum() == 3 and not mask[1, 4:].any()  # padding is never trained on


def test_no_evaluation_item_occurs_in_any_training_text(tok):
    """SFT examples, RL prompts and CPT domain text (train split) never contain an evaluation question."""
    eval_questions = {it.question for t in tasks.GENERATORS for it in tasks.make_items(t, "eval", 500)}
    training = []
    for seed in (0, 1):
        training += [it.text for it in tasks.make_mixture({"arith": 0.6, "multistep": 0.3, "check": 0.1}, "train", 5000, seed, "sft")]
        training += [it.prompt for it in tasks.make_mixture({"arith": 0.5, "multistep": 0.5}, "train", 2000, seed, "rl")]
        training += data.domain_documents({"arith": 0.5, "multistep": 0.5}, 5000, "train", seed)
    training += list(data.FORMAT_SNIPPETS)  # the tokenizer's extra text
    blob = "\n".join(training)
    leaked = [q for q in eval_questions if q in blob]
    assert not leaked, leaked[:3]
    # and the check itself can fail: an evaluation question planted in the training text is found
    planted = next(iter(eval_questions))
    assert planted in blob + "\n" + planted


def test_domain_heldout_text_comes_from_the_eval_split(tok):
    arr = data.domain_tokens(tok, {"arith": 0.5, "multistep": 0.5}, 2000, "eval")
    text = tok.decode(arr.tolist())
    assert len(arr) > 2000 and "####" in text
    assert any(n in text for n in tasks.EVAL_NAMES) and not any(f" {n} " in text for n in tasks.TRAIN_NAMES)
