"""Offline data: the general English corpus, the math domain corpus, the tokenizer, and token streams.

General text (the FineWeb-Edu stand-in) is WordNet 3.0's glosses: ~118k definitions with example sentences,
~9 MB of plain English, installed from Debian (`bash train_runs/install_corpus.sh` -> /usr/share/wordnet).
It is extracted once into the cache (`$DYNSIM_CACHE`, default `<repo>/.cache/dynsim`). The corpus `source`
can be
    "wordnet"  the Debian package (the default for real runs),
    "sample"   a committed ~300 KB slice of the same documents (train_runs/data/general_sample.txt; tests),
    a path     any UTF-8 text file: documents separated by blank lines (or one a line if it has none).
5% of documents (chosen by a hash of their text, so stable under reordering) are held out for evaluation.

Domain text (CPT) is worked solutions of the in-domain tasks from the training split (tasks.py).
Tokenizer: byte-level BPE trained here with `tokenizers`, digits split one by one (so arithmetic is
learnable from a few hundred merges), cached under a hash of everything it was trained on.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from dynsim.errors import UserError
from dynsim.files import atomic_write, atomic_write_bytes
from train_runs import tasks

REPO = Path(__file__).resolve().parent.parent
SAMPLE = Path(__file__).resolve().parent / "data" / "general_sample.txt"
WORDNET_DIR = Path(os.environ.get("DYNSIM_WORDNET_DIR", "/usr/share/wordnet"))
EOS = "<|endoftext|>"
HELDOUT_EVERY = 20  # 1 in 20 documents (5%) is held out
TOKENIZER_VERSION = "bpe-bytelevel-digits/3"


def cache_dir() -> Path:
    return Path(os.environ.get("DYNSIM_CACHE", REPO / ".cache" / "dynsim"))


def sha(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:16]


# -- general text -----------------------------------------------------------------------------------
_POS = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}


def wordnet_documents(wordnet_dir: Path = WORDNET_DIR) -> list[str]:
    """One document per synset: 'lemma, synonym (pos): definition. Example sentence.'"""
    files = [wordnet_dir / f"data.{p}" for p in ("noun", "verb", "adj", "adv")]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"WordNet is not installed ({missing[0]} missing): run `bash train_runs/install_corpus.sh`, "
                                f"or use corpus source 'sample' or a text file")
    docs = []
    for f in files:
        for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("  ") or " | " not in line:  # the licence header lines start with two spaces
                continue
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            n_words = int(fields[3], 16)
            lemmas = [re.sub(r"\(.*?\)$", "", w).replace("_", " ") for w in fields[4:4 + 2 * n_words:2]]
            parts = [p.strip() for p in gloss.strip().split(";") if p.strip()]
            definition = "; ".join(p for p in parts if not p.startswith('"'))
            examples = [p.strip('"').strip() for p in parts if p.startswith('"')]
            text = f"{', '.join(dict.fromkeys(lemmas))} ({_POS[fields[2]]}): {definition}."
            for ex in examples:
                if ex:
                    text += " " + ex[0].upper() + ex[1:] + ("" if ex[-1] in ".!?" else ".")
            docs.append(text)
    return docs


def read_text_documents(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if re.search(r"\n\s*\n", text):
        docs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    else:
        docs = [line.strip() for line in text.splitlines()]
    return [d for d in docs if d]


@dataclass
class GeneralCorpus:
    source: str
    train_docs: list[str]
    eval_docs: list[str]
    hash: str  # of the document list: part of every run's data hash


def is_heldout(doc: str) -> bool:
    return int(hashlib.sha256(doc.encode()).hexdigest()[:8], 16) % HELDOUT_EVERY == 0


def load_general_corpus(source: str = "wordnet") -> GeneralCorpus:
    """The general corpus split into train / held-out documents; WordNet is extracted once into the cache."""
    if source == "sample":
        docs = read_text_documents(SAMPLE)
    elif source == "wordnet":
        cached = cache_dir() / "corpus" / "wordnet.txt"
        if not cached.exists():
            atomic_write_bytes(cached, "\n".join(wordnet_documents()).encode())
        docs = read_text_documents(cached)
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"general corpus '{source}' is neither 'wordnet', 'sample' nor a text file")
        docs = read_text_documents(path)
    if len(docs) < 2 * HELDOUT_EVERY:
        raise UserError(f"general corpus '{source}' has only {len(docs)} documents; need at least {2 * HELDOUT_EVERY}")
    train_docs = [d for d in docs if not is_heldout(d)]
    eval_docs = [d for d in docs if is_heldout(d)]
    random.Random("general-order").shuffle(train_docs)  # WordNet is sorted by topic; pretraining wants it mixed
    return GeneralCorpus(source, train_docs, eval_docs, sha(*docs))


# -- tokenizer --------------------------------------------------------------------------------------
# Text in the answer format, so 'Q:', ' A:', ' ####' and ' 7' (space + digit) earn merges: a worked problem then
# costs ~50 tokens instead of ~75. Built from a fixed pattern, not from tasks.py: the tokenizer (and with it every
# pretrained checkpoint) must not change when a task generator does.
FORMAT_SNIPPETS = tuple(f"Q: How many are there now? A: {a} {op} {b} = {eval(f'{a}{op}{b}')}. #### {eval(f'{a}{op}{b}')}"
                        for a in range(10) for b in range(10) for op in "+-*") + (
    "Answer 1 for yes, 0 for no.", "def f(x):\n    y = x + 1\n    return y * 2", "Table: name | count ; ")
FORMAT_SHARE = 0.08  # of the tokenizer's training characters


def tokenizer_training_text(corpus: GeneralCorpus) -> list[str]:
    """General training text plus the format snippets repeated to FORMAT_SHARE of the characters."""
    general_chars = sum(map(len, corpus.train_docs))
    snippet_chars = sum(map(len, FORMAT_SNIPPETS))
    repeats = max(1, round(FORMAT_SHARE * general_chars / snippet_chars))
    return corpus.train_docs + list(FORMAT_SNIPPETS) * repeats


def get_tokenizer(corpus: GeneralCorpus, vocab_size: int = 512) -> Tokenizer:
    if vocab_size < 300:
        raise UserError(f"vocab_size must be at least 300 (256 bytes + merges + specials), got {vocab_size}")
    key = sha(TOKENIZER_VERSION, corpus.hash, str(vocab_size), *FORMAT_SNIPPETS, str(FORMAT_SHARE))
    path = cache_dir() / "tokenizer" / f"{key}.json"
    if path.exists():
        return Tokenizer.from_file(str(path))
    tok = train_bpe(tokenizer_training_text(corpus), vocab_size)
    atomic_write(path, lambda tmp: tok.save(tmp))
    return tok


def train_bpe(texts, vocab_size: int) -> Tokenizer:
    """The byte-level BPE every corpus gets (built-in or sharded, train_runs/shards.py), trained on `texts`."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        # one digit per piece, keeping a leading space with it (' 12' -> ' 1', '2'), so a number costs one token
        # per digit and the model sees place value the same way in every number
        pre_tokenizers.Split(Regex(r" ?[0-9]"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def tokenizer_hash(tok: Tokenizer) -> str:
    return sha(tok.to_str())


def encode_documents(tok: Tokenizer, docs: list[str]) -> np.ndarray:
    """Documents -> one uint16 token array, each document followed by EOS."""
    eos = tok.token_to_id(EOS)
    ids = []
    for enc in tok.encode_batch(docs):
        ids.extend(enc.ids)
        ids.append(eos)
    return np.asarray(ids, dtype=np.uint16)


def cached_tokens(tok: Tokenizer, docs: list[str], what: str) -> np.ndarray:
    """encode_documents, cached under a hash of tokenizer + documents (WordNet takes ~10 s to encode)."""
    path = cache_dir() / "tokens" / f"{what}-{sha(tokenizer_hash(tok), *docs)}.npy"
    if not path.exists():
        atomic_write(path, lambda tmp: np.save(tmp, encode_documents(tok, docs)))
    return np.load(path, mmap_mode="r")  # memory-mapped: a stage pages in only the windows it reads


# -- domain text ------------------------------------------------------------------------------------
def domain_documents(weights: dict[str, float], n: int, split: str, seed: int = 0) -> list[str]:
    """Worked solutions ('Q: ... A: ... #### n') of in-domain tasks: the CPT domain corpus."""
    return [it.text for it in tasks.make_mixture(weights, split, n, seed, stream="cpt")]


def domain_tokens(tok: Tokenizer, weights: dict[str, float], n_tokens: int, split: str, seed: int = 0) -> np.ndarray:
    """At least n_tokens (+1 for the last target) of domain text; generated in chunks until long enough."""
    docs_per_token = 1 / 40  # a worked problem is ~40 tokens; the loop below corrects any misestimate
    n_docs = max(64, int(n_tokens * docs_per_token * 1.1))
    while True:
        arr = encode_documents(tok, domain_documents(weights, n_docs, split, seed))
        if len(arr) > n_tokens:
            return arr
        n_docs = int(n_docs * 1.5 * n_tokens / max(len(arr), 1)) + 64


@dataclass
class TokenStream:
    """A token array read as consecutive windows of block_size+1 (input and shifted target).

    Window i starts at (offset + i * block_size) mod (len - block_size - 1): each pass reads the array in order,
    and the batch for any step is a pure function of the step, so a resumed run sees exactly the same data.
    """
    tokens: np.ndarray
    block_size: int
    offset: int = 0

    def __post_init__(self):
        if len(self.tokens) < self.block_size + 2:
            raise ValueError(f"token stream of {len(self.tokens)} tokens is shorter than one block ({self.block_size + 1})")

    @property
    def span(self) -> int:
        return len(self.tokens) - self.block_size - 1

    def windows(self, indices) -> np.ndarray:
        starts = (self.offset + np.asarray(indices, dtype=np.int64) * self.block_size) % self.span
        return np.stack([self.tokens[s:s + self.block_size + 1] for s in starts]).astype(np.int64)
