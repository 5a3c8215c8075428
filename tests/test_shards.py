"""Token shards (train_runs/shards.py, `dynsim tokenize`): what is written reads back as the documents' tokens in
order, across shard boundaries; damage is refused in one line; a failed run leaves nothing; a PT + CPT run trains
from general and domain shards."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynsim.cli import main
from train_runs import data, shards

SAMPLE_DOCS = data.read_text_documents(data.SAMPLE)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A text file and a JSONL file of the committed sample, tokenized into shards of 3,000 tokens."""
    d = tmp_path_factory.mktemp("corpus")
    (d / "a.txt").write_text("\n\n".join(SAMPLE_DOCS[:900]), encoding="utf-8")
    (d / "b.jsonl").write_text("".join(json.dumps({"text": t, "id": i}) + "\n"
                                       for i, t in enumerate(SAMPLE_DOCS[900:1300])), encoding="utf-8")
    manifest = shards.write_shards([d / "a.txt", d / "b.jsonl"], d / "shards", vocab_size=400, shard_tokens=3000,
                                   log=lambda m: None)
    return d, manifest


def test_shards_hold_every_document_in_order_and_hold_out_by_hash(corpus):
    d, manifest = corpus
    opened = shards.Shards.open(str(d / "shards"))
    tok = opened.tokenizer()
    docs = [" ".join(t.split()) for t in SAMPLE_DOCS[:1300]]
    train = [t for t in docs if not data.is_heldout(t)]
    heldout = [t for t in docs if data.is_heldout(t)]
    np.testing.assert_array_equal(np.asarray(opened.tokens("train")[:]), data.encode_documents(tok, train))
    np.testing.assert_array_equal(np.asarray(opened.tokens("heldout")[:]), data.encode_documents(tok, heldout))
    assert opened.heldout_documents() == heldout
    assert len(manifest["splits"]["train"]) > 3 and all(e["tokens"] == 3000 for e in manifest["splits"]["train"][:-1])
    assert manifest["documents"] == {"train": len(train), "heldout": len(heldout), "dropped": 0}
    assert manifest["dtype"] == "uint16" and tok.get_vocab_size() == 400


@settings(max_examples=60, deadline=None)
@given(start=st.integers(0, 12_000), length=st.integers(0, 7_000))
def test_a_slice_across_shards_is_the_slice_of_the_whole(corpus, start, length):
    d, _ = corpus
    tokens = shards.Shards.open(str(d / "shards")).tokens("train")
    whole = np.concatenate(tokens.parts)
    np.testing.assert_array_equal(tokens[start:start + length], whole[start:start + length])
    assert len(tokens) == len(whole)


def test_a_token_stream_reads_the_same_windows_from_shards_as_from_an_array(corpus):
    d, _ = corpus
    tokens = shards.Shards.open(str(d / "shards")).tokens("train")
    on_disk, in_memory = data.TokenStream(tokens, 64, offset=12345), data.TokenStream(np.asarray(tokens[:]), 64,
                                                                                        offset=12345)
    rows = np.arange(0, 2000, 7)
    np.testing.assert_array_equal(on_disk.windows(rows), in_memory.windows(rows))


@pytest.mark.parametrize("damage, words", [
    ("flip", "does not match its checksum"), ("truncate", "truncated or replaced"), ("remove", "is missing"),
    ("tokenizer", "is missing or does not match its checksum"), ("manifest", "not a readable shard manifest"),
])
def test_damaged_shards_are_refused_in_one_line(corpus, tmp_path, damage, words):
    import shutil

    d, _ = corpus
    folder = tmp_path / "copy"
    shutil.copytree(d / "shards", folder)
    shard = folder / "train-00001.bin"
    if damage == "flip":
        raw = bytearray(shard.read_bytes())
        raw[100] ^= 0xFF
        shard.write_bytes(bytes(raw))
    elif damage == "truncate":
        shard.write_bytes(shard.read_bytes()[:-2])
    elif damage == "remove":
        shard.unlink()
    elif damage == "tokenizer":
        (folder / "tokenizer.json").write_text((folder / "tokenizer.json").read_text().replace('"<|endoftext|>"',
                                                                                               '"<|eot|>"'))
    else:
        (folder / "manifest.json").write_text("{")
    with pytest.raises(shards.ShardError, match=words) as e:
        shards.Shards.open(str(folder)).tokens("train")
    assert "\n" not in str(e.value)


def test_bad_corpora_are_refused_in_one_line_and_leave_nothing(corpus, tmp_path, capsys):
    d, _ = corpus
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(
        json.dumps({"text": t}) + "\n" for t in SAMPLE_DOCS[:50]) + '{"body": "no text"}\n')
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9\n".encode("latin-1"))
    out = tmp_path / "out"
    cases = [([str(bad), "-o", str(out)], "line 51: a JSON object with a \"text\" string expected"),
             ([str(latin), "-o", str(out)], "is not UTF-8 text"),
             ([str(tmp_path / "none.txt"), "-o", str(out)], "is not a file"),
             ([str(d / "a.txt"), "-o", str(d)], "exists and is not an empty folder"),
             ([str(d / "a.txt"), "-o", str(out), "--vocab-size", "500", "--tokenizer", str(d / "shards" /
                                                                                          "tokenizer.json")], "not both"),
             ([str(d / "a.txt"), "-o", str(out), "--vocab-size", "20"], "argument --vocab-size")]
    for argv, words in cases:
        assert main(["tokenize", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists() and not list(tmp_path.glob(".out.*"))  # nothing half-made


def test_a_run_trains_from_general_and_domain_shards(corpus, tmp_path):
    """PT + CPT with [data] general_corpus and domain_corpus shard folders: the PT loss falls, the CPT stage reads
    its domain share from the domain shards, and the record's data hash names the shards."""
    from dynsim.config import parse_config
    from train_runs.train import train

    d, _ = corpus
    (tmp_path / "domain.txt").write_text("\n".join(f"Q: {a} + {b} = {a + b}." for a in range(40) for b in range(40)))
    shards.write_shards([tmp_path / "domain.txt"], tmp_path / "domain", tokenizer=d / "shards" / "tokenizer.json",
                        shard_tokens=4000, log=lambda m: None)
    recipe = {"extends": "quick", "data": {"general_corpus": str(d / "shards"), "domain_corpus": str(tmp_path / "domain"),
                                           "vocab_size": 400},
              "run": {"threads": 1}, "eval": {"cloze_items": 20, "text_tokens": 256}}
    record = train(parse_config("0.1M-60KT-0+30KT"), tmp_path / "runs", recipe=recipe, progress=False)
    pt_log = json.loads((tmp_path / "runs" / "0.1M-60KT" / "seed0" / "train_log.json").read_text())
    losses = [h["loss"] for h in pt_log["history"]]
    assert losses[-1] < losses[0] - 0.4, losses  # from ln(400) = 5.99 at the start; 5.1 after 15 steps here
    cpt_log = json.loads((tmp_path / "runs" / "0.1M-60KT-0+30KT" / "seed0" / "train_log.json").read_text())
    assert all(h.get("domain_share", 1.0) == 1.0 for h in cpt_log["history"])  # all-domain CPT
    def domain_loss(rec):
        return next(m["value"] for m in rec["metrics"] if m["task"] == "domain_text" and m["metric"] == "loss")
    pt_record = json.loads((tmp_path / "runs" / "0.1M-60KT" / "seed0" / "result.json").read_text())
    assert domain_loss(record) < domain_loss(pt_record) - 0.5  # held-out sums of the domain shards
    generated = train(parse_config("0.1M-60KT-0+30KT"), tmp_path / "runs2", progress=False,
                      recipe=recipe | {"data": recipe["data"] | {"domain_corpus": ""}})
    assert record["provenance"]["data_hash"] != generated["provenance"]["data_hash"]


def test_a_vocabulary_other_than_the_shards_is_refused(corpus, tmp_path):
    from dynsim.config import parse_config
    from dynsim.errors import UserError
    from train_runs.train import train

    d, _ = corpus
    with pytest.raises(UserError, match="set vocab_size = 400"):
        train(parse_config("0.1M-60KT"), tmp_path, recipe={"data": {"general_corpus": str(d / "shards")}},
              progress=False)
