"""A corpus at scale: tokenized once into memory-mapped token shards that every stage streams.

    dynsim tokenize CORPUS [CORPUS ...] -o DIR [--vocab-size 32000 | --tokenizer tokenizer.json]

CORPUS files are UTF-8 text (documents separated by blank lines, or one a line where there are none: as
`data.read_text_documents`) or JSON Lines (`.jsonl`: one document a line, its "text" field). DIR receives

    tokenizer.json        the byte-level BPE of train_runs/data.py trained on the documents, or the one given
    train-00000.bin ...   every training document's tokens, each followed by EOS, in file order, cut into shards of
                          --shard-tokens (nanoGPT's .bin: raw uint16, or uint32 for vocabularies over 65,536)
    heldout-00000.bin     the held-out documents' tokens (1 in data.HELDOUT_EVERY by a hash of the text, as for the
                          built-in corpora), at most --heldout-docs of them; beyond that, held-out documents are
    heldout.jsonl         dropped, not trained on; heldout.jsonl keeps their text (cloze items are built from it)
    manifest.json         written last: dtype, tokens and sha256 of every shard, the tokenizer's hash, the sources

A recipe names DIR as `[data] general_corpus` (PT, and CPT's replay) or `[data] domain_corpus` (CPT's domain
share); `ShardedTokens` reads a split as one read-only token sequence over np.memmap views, so a stage holds only
the windows of its batch in memory. Each shard's size is checked on every open and its sha256 on the first open in a
process (a stamp beside it remembers a verified size and mtime, so later jobs skip re-reading it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from dynsim.errors import UserError, shown
from dynsim.files import atomic_write_bytes
from train_runs import data

SCHEMA = "dynsim.shards/1"
MANIFEST = "manifest.json"
SPLITS = ("train", "heldout")
DOC_BATCH = 1024  # documents encoded at once


class ShardError(UserError):
    """A shard folder that is missing, incomplete or damaged; one line naming the file."""


# -- writing ------------------------------------------------------------------------------------------------
def documents(path: Path):
    """The documents of one corpus file, in order."""
    if path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ShardError(f"{shown(str(path))} line {n}: not JSON ({e.msg})") from None
                if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
                    raise ShardError(f"{shown(str(path))} line {n}: a JSON object with a \"text\" string expected")
                text = " ".join(doc["text"].split())
                if text:
                    yield text
    else:
        yield from data.read_text_documents(path)


def check_sources(paths: list[Path]) -> None:
    """Every corpus file readable, UTF-8, and (JSONL) a "text" object a line, before any work: one pass more."""
    for p in paths:
        if not p.is_file():
            raise ShardError(f"corpus {shown(str(p))} is not a file")
        try:
            for _ in documents(p):
                pass
        except UnicodeDecodeError:
            raise ShardError(f"corpus {shown(str(p))} is not UTF-8 text") from None


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


class _ShardWriter:
    """Token ids in, shard files of exactly `shard_tokens` tokens out (the last one shorter), each atomic."""

    def __init__(self, folder: Path, split: str, dtype, shard_tokens: int):
        self.folder, self.split, self.dtype, self.shard_tokens = folder, split, dtype, shard_tokens
        self.buffer: list[np.ndarray] = []
        self.buffered = 0
        self.shards: list[dict] = []

    def add(self, ids: list[int]) -> None:
        self.buffer.append(np.asarray(ids, dtype=self.dtype))
        self.buffered += len(ids)
        while self.buffered >= self.shard_tokens:
            flat = np.concatenate(self.buffer)
            self._write(flat[: self.shard_tokens])
            rest = flat[self.shard_tokens:]
            self.buffer, self.buffered = [rest], len(rest)

    def close(self) -> list[dict]:
        if self.buffered or not self.shards:
            self._write(np.concatenate(self.buffer) if self.buffer else np.zeros(0, self.dtype))
        return self.shards

    def _write(self, tokens: np.ndarray) -> None:
        path = self.folder / f"{self.split}-{len(self.shards):05d}.bin"
        atomic_write_bytes(path, tokens.tobytes())
        self.shards.append({"file": path.name, "tokens": int(len(tokens)), "sha256": _sha256_file(path)})


def write_shards(sources: list[Path], out: Path, vocab_size: int = 32000, tokenizer: Path | None = None,
                 shard_tokens: int = 1 << 28, heldout_docs: int = 10_000, log=print) -> dict:
    """Tokenize `sources` into shard files under `out` (a new or empty folder); returns the manifest. Written in a
    hidden folder beside it and renamed into place when complete: a killed or failed run leaves nothing half-made."""
    check_sources(sources)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ShardError(f"-o {shown(str(out))} exists and is not an empty folder: shards go to a new one")
    if shard_tokens < 1 or heldout_docs < 0:
        raise ShardError("--shard-tokens must be >= 1 and --heldout-docs >= 0")
    final, out = out, out.parent / f".{out.name}.{os.getpid()}.partial"  # renamed into place when complete
    out.mkdir(parents=True)
    try:
        manifest = _write(sources, out, vocab_size, tokenizer, shard_tokens, heldout_docs, log)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    if final.exists():
        final.rmdir()  # the empty folder checked above
    os.replace(out, final)
    return manifest


def _write(sources, out, vocab_size, tokenizer, shard_tokens, heldout_docs, log) -> dict:
    def all_documents():
        for p in sources:
            yield from documents(p)

    if tokenizer is not None:
        try:
            tok = Tokenizer.from_file(str(tokenizer))
        except Exception as e:  # noqa: BLE001 - the tokenizers library raises its own exception types
            raise ShardError(f"--tokenizer {shown(str(tokenizer))} is not a tokenizers JSON file ({e})") from None
        if tok.token_to_id(data.EOS) is None:
            raise ShardError(f"--tokenizer {shown(str(tokenizer))} has no {data.EOS} token")
    else:
        log(f"training a {vocab_size}-token BPE on the documents")
        tok = data.train_bpe(all_documents(), vocab_size)
    atomic_write_bytes(out / "tokenizer.json", tok.to_str().encode())
    n_vocab = tok.get_vocab_size()
    dtype = np.uint16 if n_vocab <= 1 << 16 else np.uint32
    eos = tok.token_to_id(data.EOS)
    writers = {s: _ShardWriter(out, s, dtype, shard_tokens) for s in SPLITS}
    counts = dict.fromkeys(SPLITS, 0) | {"dropped": 0}
    heldout_text = []

    def flush(split: str, docs: list[str]) -> None:
        for enc in tok.encode_batch(docs):
            writers[split].add(enc.ids + [eos])

    batch: dict = {s: [] for s in SPLITS}
    for doc in all_documents():
        split = "heldout" if data.is_heldout(doc) else "train"
        if split == "heldout":
            if counts["heldout"] >= heldout_docs:
                counts["dropped"] += 1
                continue
            heldout_text.append(doc)
        counts[split] += 1
        batch[split].append(doc)
        if len(batch[split]) >= DOC_BATCH:
            flush(split, batch[split])
            batch[split] = []
    for split in SPLITS:
        flush(split, batch[split])
    if counts["train"] < 1 or counts["heldout"] < 1:
        raise ShardError(f"the corpus has {counts['train']} training and {counts['heldout']} held-out documents; "
                         f"both need at least one (1 in {data.HELDOUT_EVERY} documents is held out)")
    atomic_write_bytes(out / "heldout.jsonl",
                            "".join(json.dumps({"text": d}) + "\n" for d in heldout_text).encode())
    manifest = {"schema": SCHEMA, "dtype": np.dtype(dtype).name, "vocab_size": n_vocab,
                "tokenizer_sha256": _sha256_file(out / "tokenizer.json"),
                "heldout_sha256": _sha256_file(out / "heldout.jsonl"),
                "documents": counts, "splits": {s: writers[s].close() for s in SPLITS},
                "sources": [{"file": str(p), "sha256": _sha256_file(p)} for p in sources]}
    atomic_write_bytes(out / MANIFEST, json.dumps(manifest, indent=1).encode())
    return manifest


# -- reading ------------------------------------------------------------------------------------------------
def is_shard_dir(source: str) -> bool:
    return (Path(source).expanduser() / MANIFEST).is_file()


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ShardError(f"{shown(str(path))}: not a readable shard manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise ShardError(f"{shown(str(path))}: not a {SCHEMA} manifest")
    return manifest


_VERIFIED: set = set()  # shards whose sha256 this process has checked


def _verify(path: Path, entry: dict, itemsize: int) -> None:
    if not path.is_file():
        raise ShardError(f"shard {shown(str(path))} is missing")
    st = path.stat()
    if st.st_size != entry["tokens"] * itemsize:
        raise ShardError(f"shard {shown(str(path))} has {st.st_size} bytes, the manifest says "
                         f"{entry['tokens'] * itemsize}: truncated or replaced")
    key = (str(path), st.st_size, st.st_mtime_ns)
    stamp = path.with_name(path.name + ".verified")
    stamped = f"{entry['sha256']} {st.st_size} {st.st_mtime_ns}"
    if key in _VERIFIED or (stamp.is_file() and stamp.read_text() == stamped):
        _VERIFIED.add(key)
        return
    if _sha256_file(path) != entry["sha256"]:
        raise ShardError(f"shard {shown(str(path))} does not match its checksum in {MANIFEST}: damaged")
    _VERIFIED.add(key)
    try:
        atomic_write_bytes(stamp, stamped.encode())
    except OSError:  # a read-only store: verified again by the next process
        pass


@dataclass
class Shards:
    """A shard folder, checked: its manifest, tokenizer and held-out text."""
    folder: Path
    manifest: dict

    @classmethod
    def open(cls, source: str) -> "Shards":
        folder = Path(source).expanduser()
        manifest = read_manifest(folder)
        for name, key in (("tokenizer.json", "tokenizer_sha256"), ("heldout.jsonl", "heldout_sha256")):
            path = folder / name
            if not path.is_file() or _sha256_file(path) != manifest.get(key):
                raise ShardError(f"{shown(str(path))} is missing or does not match its checksum in {MANIFEST}")
        return cls(folder, manifest)

    @property
    def hash(self) -> str:
        """Of every shard's and the tokenizer's content: the corpus's part of a run's data hash."""
        m = self.manifest
        return data.sha(SCHEMA, m["tokenizer_sha256"], m["heldout_sha256"],
                        *(e["sha256"] for s in SPLITS for e in m["splits"][s]))

    def tokenizer(self) -> Tokenizer:
        return Tokenizer.from_file(str(self.folder / "tokenizer.json"))

    def heldout_documents(self) -> list[str]:
        lines = (self.folder / "heldout.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line)["text"] for line in lines if line]

    def tokens(self, split: str) -> "ShardedTokens":
        return ShardedTokens(self.folder, self.manifest, split)


class ShardedTokens:
    """One split's shards as one read-only token sequence: len() and slices across shard boundaries, each shard
    a np.memmap, so only what a batch reads is paged in. What TokenStream needs of an array."""

    def __init__(self, folder: Path, manifest: dict, split: str):
        dtype = np.dtype(manifest["dtype"])
        entries = [e for e in manifest["splits"][split] if e["tokens"]]
        for e in entries:
            _verify(folder / e["file"], e, dtype.itemsize)
        self.parts = [np.memmap(folder / e["file"], dtype=dtype, mode="r") for e in entries]
        self.starts = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, index) -> np.ndarray:
        if not isinstance(index, slice):
            raise TypeError("ShardedTokens reads slices")
        start, stop, step = index.indices(len(self))
        if step != 1:
            raise TypeError("ShardedTokens reads contiguous slices")
        first = int(np.searchsorted(self.starts, start, side="right")) - 1
        pieces = []
        k = max(first, 0)
        while start < stop and k < len(self.parts):
            lo = start - self.starts[k]
            hi = min(stop, self.starts[k + 1]) - self.starts[k]
            pieces.append(self.parts[k][lo:hi])
            start = self.starts[k] + hi
            k += 1
        return np.concatenate(pieces) if pieces else np.zeros(0, self.parts[0].dtype if self.parts else np.uint16)
