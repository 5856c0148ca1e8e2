"""`minhash`: near-duplicate removal with MinHash LSH, script-aware, verified by exact Jaccard.

Why our own code rather than datatrove's MinHash stages or datasketch: datatrove hashes shingles one by one
in Python and fails on Chinese (no segmentation unless the language code is exactly `cmn`); datasketch
updates one MinHash object per document. Here shingles are hashed once per token and combined into n-gram
hashes with numpy, the permutations are a vectorised multiply-shift over whole batches of documents, and
the banded index is clustered with union-find after checking each candidate pair's exact Jaccard.

Flow inside `corpus clean` (see `corpus.pipeline`):
  pass 1  `MinhashSignature` shingles each surviving document and writes, per task, its band keys and
          shingle sets to `_work/minhash/<rank>.npz`;
  plan    `plan_near_duplicates` reads the band keys one band at a time, verifies candidate pairs, clusters
          them and picks the survivor of each cluster (keep policy);
  pass 2  `MinhashFilter` removes the other members, recording the cluster (the kept document's id).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xxhash
from datatrove.data import Document, DocumentsPipeline

from corpus.base import CorpusStep
from corpus.config import MinhashConfig
from corpus.io import atomic_write_npy
from corpus.langid import document_language

NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "wuu", "yue", "lo", "km", "my", "bo"})
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_NGRAM_MULT = np.uint64(0x9E3779B97F4A7C15)
_MAX_BATCH_SHINGLES = 1 << 11  # (shingles x num_perm) work matrix of 1 MB at 64 permutations: stays in L2 cache, 25% faster than 8 MB
_PUNCT = re.compile(r"[^\w\s]|_")
_DIGITS = re.compile(r"\d")
_CHAR_SALT = np.uint64(0x5851F42D4C957F2D)
_BMP = 0x10000
_CODE_BITS = 21  # every Unicode code point, plus one, fits in 21 bits


@functools.lru_cache(maxsize=1)
def _char_classes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per BMP code point: is whitespace, is alphanumeric (`\\w` without `_`), is a decimal digit (`\\d`).
    Built once, on the first document of a script without spaces (about 30 ms)."""
    chars = [chr(c) for c in range(_BMP)]
    return (np.array([c.isspace() for c in chars], dtype=bool), np.array([c.isalnum() for c in chars], dtype=bool),
            np.array([c.isdecimal() for c in chars], dtype=bool))


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, vectorised: spreads the bits of every 64-bit value."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class Shingler:
    """Turns a text into its set of n-gram hashes: word n-grams, or character n-grams for scripts
    without spaces; documents shorter than n tokens give one shingle of all their tokens."""

    def __init__(self, cfg: MinhashConfig):
        self.cfg = cfg
        self._token_hashes: dict[str, int] = {}

    def normalize(self, text: str) -> str:
        if self.cfg.lowercase:
            text = text.lower()
        if self.cfg.strip_punctuation:
            text = _PUNCT.sub(" ", text)
        if self.cfg.normalize_digits:
            text = _DIGITS.sub("0", text)
        return text

    def tokens(self, text: str, lang: str) -> list[str]:
        text = self.normalize(text)
        if lang in NO_SPACE_LANGUAGES:
            return [ch for ch in text if not ch.isspace()]
        return text.split()

    def char_codes(self, text: str) -> np.ndarray:
        """The code points of `tokens(text, <no-space language>)`, normalised by table lookups in numpy:
        the same result as the regular expressions of `normalize`, at a fraction of their cost on long
        CJK documents, where every character is a token."""
        codes = np.frombuffer((text.lower() if self.cfg.lowercase else text).encode("utf-32-le"), dtype=np.uint32)
        space, alnum, digit = _char_classes()
        bmp = np.minimum(codes, _BMP - 1)
        keep = alnum[bmp] if self.cfg.strip_punctuation else ~space[bmp]
        high = codes >= _BMP
        if high.any():  # rare: classify the few distinct astral code points one by one
            codes = codes.copy()
            for c in np.unique(codes[high]).tolist():
                ch, at = chr(c), codes == c
                keep[at] = ch.isalnum() if self.cfg.strip_punctuation else not ch.isspace()
                if self.cfg.normalize_digits and ch.isdecimal():
                    codes[at] = 48
        codes = codes[keep]
        if self.cfg.normalize_digits:  # U+FFFF, where astral code points look up, is no digit
            codes = np.where(digit[np.minimum(codes, _BMP - 1)], np.uint32(48), codes)
        return codes

    def token_hashes(self, text: str, lang: str) -> np.ndarray:
        """One uint64 hash per word, in order (words of space-delimited scripts only)."""
        tokens = self.tokens(text, lang)
        cache = self._token_hashes
        if len(cache) > 2_000_000:
            cache.clear()
        return np.fromiter(
            (cache[t] if t in cache else cache.setdefault(t, xxhash.xxh3_64_intdigest(t)) for t in tokens),
            dtype=np.uint64, count=len(tokens),
        )

    def shingle_hashes(self, text: str, lang: str, min_tokens: int = 1) -> np.ndarray:
        """The uint64 hash of every n-gram in text order, repeats included (a MinHash signature does not
        need them removed, and removing them costs a sort); empty when the text has fewer than `min_tokens`
        tokens (words, or characters for scripts without spaces)."""
        if lang in NO_SPACE_LANGUAGES:
            codes = self.char_codes(text).astype(np.uint64) + np.uint64(1)  # 1..0x110000: fits 21 bits, never 0
            n, size = self.cfg.char_ngram, len(codes)
            if size < min_tokens:
                return np.zeros(0, np.uint64)
            if n * _CODE_BITS <= 64:  # pack the n code points side by side: distinct n-grams, distinct keys
                n = min(n, size)
                m = size - n + 1
                h = codes[:m].copy()
                for k in range(1, n):
                    h <<= np.uint64(_CODE_BITS)
                    h |= codes[k : k + m]
                return _mix64(h + _CHAR_SALT)
            ids = _mix64(codes + _CHAR_SALT)
        else:
            ids, n = self.token_hashes(text, lang), self.cfg.word_ngram
        if not len(ids) or len(ids) < min_tokens:
            return np.zeros(0, np.uint64)
        n = min(n, len(ids))
        m = len(ids) - n + 1
        h = ids[:m].copy()
        for k in range(1, n):  # polynomial combination of the n token hashes, wrapping mod 2**64
            h = h * _NGRAM_MULT + ids[k : k + m]
        return _mix64(h)

    def shingles(self, text: str, lang: str, min_tokens: int = 1) -> np.ndarray:
        """Sorted unique uint64 shingle hashes: the shingle set whose Jaccard similarity MinHash estimates."""
        return np.unique(self.shingle_hashes(text, lang, min_tokens))


class MinHasher:
    """`num_perm` min-wise hash functions (multiply-shift: (a*x + b) >> 32, a odd), fixed by a seed."""

    def __init__(self, num_perm: int, seed: int):
        rng = np.random.default_rng(seed)
        self.a = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self.b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)

    def signatures(self, shingle_sets: list[np.ndarray]) -> np.ndarray:
        """(documents, num_perm) uint32 signatures; every set must be non-empty."""
        out = np.empty((len(shingle_sets), len(self.a)), dtype=np.uint64)
        start = 0
        while start < len(shingle_sets):  # batches of documents, bounded in shingles for memory
            end, total = start, 0
            while end < len(shingle_sets) and (end == start or total + len(shingle_sets[end]) <= _MAX_BATCH_SHINGLES):
                total += len(shingle_sets[end])
                end += 1
            batch = shingle_sets[start:end]
            if total > _MAX_BATCH_SHINGLES:  # one very long document: running minimum over chunks
                x = batch[0]
                sig = np.full(len(self.a), np.iinfo(np.uint64).max, dtype=np.uint64)
                for i in range(0, len(x), _MAX_BATCH_SHINGLES):
                    sig = np.minimum(sig, self._permute(x[i : i + _MAX_BATCH_SHINGLES]).min(axis=0))
                out[start] = sig
            else:
                x = np.concatenate(batch)
                offsets = np.cumsum([0] + [len(s) for s in batch[:-1]])
                out[start:end] = np.minimum.reduceat(self._permute(x), offsets, axis=0)
            start = end
        # the hash is the top 32 bits of a*x + b; shifting is monotone, so the minimum is taken on the full
        # 64-bit values and only the (documents x num_perm) result is shifted: two passes fewer over the
        # (shingles x num_perm) matrix
        return (out >> np.uint64(32)).astype(np.uint32)

    def _permute(self, x: np.ndarray) -> np.ndarray:
        y = np.multiply(x[:, None], self.a[None, :])
        y += self.b[None, :]  # in place: one matrix, not two
        return y


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(documents, bands) uint64 keys: documents agreeing on all `rows` values of a band share its key."""
    n = len(signatures)
    banded = signatures[:, : bands * rows].reshape(n, bands, rows).astype(np.uint64)
    keys = np.zeros((n, bands), dtype=np.uint64)
    for r in range(rows):
        keys = _mix64(keys * _NGRAM_MULT + banded[:, :, r] + np.uint64(r + 1))
    return keys


def candidate_probability(jaccard: float, bands: int, rows: int) -> float:
    """Probability that two documents of this Jaccard similarity share at least one band."""
    return 1.0 - (1.0 - jaccard**rows) ** bands


@functools.lru_cache(maxsize=64)
def optimal_bands_rows(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) with bands*rows <= num_perm minimising the weighted false-positive and false-negative
    probability mass around `threshold` (the integrals of datasketch's and Leskovec et al.'s analysis)."""
    below = np.linspace(0.0, threshold, 201)
    above = np.linspace(threshold, 1.0, 201)
    best, best_cost = (1, num_perm), float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = np.trapezoid(1 - (1 - below**r) ** b, below)
            fn = np.trapezoid((1 - above**r) ** b, above)
            cost = fp_weight * fp + fn_weight * fn
            if cost < best_cost - 1e-12:
                best, best_cost = (b, r), cost
    return best


def containment(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the smaller of two sorted unique arrays found in the other."""
    if len(a) == 0 or len(b) == 0:
        return 0.0
    return len(np.intersect1d(a, b, assume_unique=True)) / min(len(a), len(b))


def containment_candidates(shingle_sets: list[np.ndarray], sample: int, max_postings: int, min_shared: int = 2):
    """Pairs (i, j), i < j, sharing at least `min_shared` sampled shingles: an inverted index over the
    shingles whose hash is 0 mod `sample` (the same shingles are sampled in every document, so the shared
    sample estimates the overlap), skipping shingles found in more than `max_postings` documents."""
    docs = [np.full(int((s % np.uint64(sample) == 0).sum()), i, dtype=np.int64) for i, s in enumerate(shingle_sets)]
    keys = [s[s % np.uint64(sample) == 0] for s in shingle_sets]
    if not keys or sum(len(k) for k in keys) == 0:
        return []
    keys_all, docs_all = np.concatenate(keys), np.concatenate(docs)
    order = np.argsort(keys_all, kind="stable")
    keys_all, docs_all = keys_all[order], docs_all[order]
    starts = np.flatnonzero(np.concatenate([[True], keys_all[1:] != keys_all[:-1]]))
    ends = np.concatenate([starts[1:], [len(keys_all)]])
    shared: dict[tuple[int, int], int] = {}
    for s, e in zip(starts.tolist(), ends.tolist()):
        if e - s < 2 or e - s > max_postings:
            continue
        members = docs_all[s:e].tolist()
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                pair = (members[x], members[y])
                shared[pair] = shared.get(pair, 0) + 1
    return sorted(pair for pair, n in shared.items() if n >= min_shared)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted unique arrays."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving; the root of a set is its smallest member."""

    def __init__(self, n: int):
        self.parent = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return int(x)

    def union(self, x: int, y: int) -> None:
        rx, ry = self.find(x), self.find(y)
        if rx != ry:
            lo, hi = (rx, ry) if rx < ry else (ry, rx)
            self.parent[hi] = lo

    def roots(self) -> np.ndarray:
        """The root of every element, by vectorised pointer jumping."""
        p = self.parent.copy()
        while True:
            q = p[p]
            if np.array_equal(q, p):
                return p
            p = q


@dataclass
class SignatureFile:
    """What pass 1 stores per task, one .npy file per field in `_work/minhash/<rank>/`, memory-mapped on load.
    Each band's keys are stored sorted, with the document each key belongs to, so that planning can read any
    key range of a band from every task with a binary search (see `band_slices`)."""

    band_keys: np.ndarray  # (bands, documents with shingles) uint64, every row sorted
    band_docs: np.ndarray  # (bands, documents with shingles) uint32 position of each key's document
    has_shingles: np.ndarray  # (docs,) bool
    shingles: np.ndarray  # concatenated uint64 shingle hashes of each document, repeats included
    offsets: np.ndarray  # (docs + 1,) int64
    lengths: np.ndarray  # (docs,) int64 characters
    scores: np.ndarray  # (docs,) float64 keep score from metadata, NaN when absent
    ids: np.ndarray  # (docs,) str

    FIELDS = ("band_keys", "band_docs", "has_shingles", "shingles", "offsets", "lengths", "scores", "ids")

    @classmethod
    def from_keys(cls, keys: np.ndarray, has_shingles: np.ndarray, **fields) -> SignatureFile:
        """Build from the (documents with shingles, bands) band keys, in document order."""
        docs = np.flatnonzero(has_shingles).astype(np.uint32)
        order = np.argsort(keys, axis=0, kind="stable").T  # (bands, n): per band, documents by key
        return cls(band_keys=np.take_along_axis(keys.T, order, axis=1), band_docs=docs[order],
                   has_shingles=has_shingles, **fields)

    def shingle_set(self, i: int) -> np.ndarray:
        """Document i's sorted unique shingles (stored with repeats, in text order)."""
        return np.unique(self.shingles[self.offsets[i] : self.offsets[i + 1]])

    def save(self, folder: Path) -> None:
        for name in self.FIELDS:
            atomic_write_npy(folder / f"{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, folder: Path) -> SignatureFile:
        return cls(**{n: np.load(folder / f"{n}.npy", mmap_mode="r", allow_pickle=False) for n in cls.FIELDS})


def signature_path(work_dir: str | Path, rank: int) -> Path:
    return Path(work_dir) / "minhash" / f"{rank:05d}"


def metadata_score(metadata: dict, path: str | None) -> float:
    """The number at a dotted path of the metadata (`quality.score`), NaN when absent or not a number."""
    if not path:
        return float("nan")
    value = metadata
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return float("nan")
        value = value[part]
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")


class MinhashSignature(CorpusStep):
    """Pass 1: shingles and signs every document (in batches) and stores the task's signature file.
    Removes nothing; it must be the last step before the work shards so positions line up."""

    name = "minhash_signature"
    BATCH = 512

    def __init__(self, cfg: MinhashConfig, work_dir: str | Path, output_dir: str | Path):
        super().__init__(output_dir)
        self.cfg = cfg
        self.work_dir = str(work_dir)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        bands, rows = self.cfg.bands_rows()
        shingler = Shingler(self.cfg)
        hasher = MinHasher(bands * rows, self.cfg.seed)
        key_blocks, sets, lengths, scores, ids, pending = [], [], [], [], [], []

        def flush() -> None:
            nonempty = [s for s in pending if len(s)]
            if nonempty:
                key_blocks.append(band_keys(hasher.signatures(nonempty), bands, rows))
            pending.clear()

        for doc in data:
            with self.track_time():
                s = shingler.shingle_hashes(doc.text, document_language(doc))
                if not len(s):
                    self.count("no_shingles")
                sets.append(s)
                pending.append(s)
                lengths.append(len(doc.text))
                scores.append(metadata_score(doc.metadata, self.cfg.keep_score_field))
                ids.append(doc.id)
                if len(pending) >= self.BATCH:
                    flush()
            self.count("docs_in")
            yield doc
        flush()
        self.flush_counts()
        offsets = np.zeros(len(sets) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(s) for s in sets])
        record = SignatureFile.from_keys(
            np.concatenate(key_blocks) if key_blocks else np.zeros((0, bands), np.uint64),
            has_shingles=np.array([len(s) > 0 for s in sets], dtype=bool),
            shingles=np.concatenate(sets) if sets else np.zeros(0, dtype=np.uint64),
            offsets=offsets,
            lengths=np.array(lengths, dtype=np.int64),
            scores=np.array(scores, dtype=np.float64),
            ids=np.array(ids, dtype=str) if ids else np.zeros(0, dtype="U1"),
        )
        record.save(signature_path(self.work_dir, rank))


@dataclass
class NearDuplicatePlan:
    """The clusters found, listing only documents in a cluster of two or more (global index = task, then
    position), so its size follows the duplicates, not the corpus."""

    starts: np.ndarray  # (tasks + 1,) global index of each task's first document
    members: np.ndarray  # global indexes of clustered documents, ascending
    survivor: np.ndarray  # global index of the member of each one's cluster that survives
    size: np.ndarray  # size of each one's cluster
    kept_id: np.ndarray  # id of that survivor
    candidate_pairs: int  # candidate pairs checked (pairs already in one cluster are skipped)
    verified_pairs: int

    @property
    def clusters(self) -> int:
        return int((self.survivor == self.members).sum())

    @property
    def removed(self) -> int:
        return int((self.survivor != self.members).sum())

    def for_task(self, rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(position in the task, survives, survivor's id, cluster size) of one task's clustered documents."""
        lo, hi = np.searchsorted(self.members, self.starts[rank : rank + 2])
        members = self.members[lo:hi]
        return members - self.starts[rank], self.survivor[lo:hi] == members, self.kept_id[lo:hi], self.size[lo:hi]


_ENTRY_BYTES = 48  # per band key while a slice is clustered: key, global index, sort order, and copies


def band_slices(files: list[SignatureFile], band: int, starts: np.ndarray, parts: int):
    """One band's (keys, global document indexes) in `parts` slices of the key range, each sorted by key
    and then by document. Every task's keys are sorted on disk, so each slice is a binary search and a
    contiguous read per task: memory follows the slice, not the corpus (external-memory clustering; a run of
    equal keys never straddles two slices)."""
    bounds = [np.uint64(p * 2**64 // parts) for p in range(parts)]
    for p in range(parts):
        keys, docs = [], []
        for f, file in enumerate(files):
            row = file.band_keys[band]
            lo = int(np.searchsorted(row, bounds[p])) if p else 0
            hi = int(np.searchsorted(row, bounds[p + 1])) if p + 1 < parts else len(row)
            keys.append(np.asarray(row[lo:hi]))
            docs.append(file.band_docs[band, lo:hi].astype(np.int64) + starts[f])
        keys, docs = np.concatenate(keys), np.concatenate(docs)
        order = np.lexsort((docs, keys))
        yield keys[order], docs[order]


def _gather(files: list[SignatureFile], starts: np.ndarray, field: str, at: np.ndarray) -> np.ndarray:
    """A per-document field (memory-mapped) at the given global indexes."""
    order = np.argsort(at, kind="stable")
    ascending = at[order]
    parts = []
    for f, file in enumerate(files):
        lo, hi = np.searchsorted(ascending, starts[f : f + 2])
        parts.append(np.asarray(getattr(file, field)[ascending[lo:hi] - starts[f]]))
    values = np.concatenate(parts)
    out = np.empty_like(values)
    out[order] = values
    return out


def plan_near_duplicates(files: list[SignatureFile], eligible: list[np.ndarray], cfg: MinhashConfig) -> NearDuplicatePlan:
    """Cluster the eligible documents of all tasks (global order = task, then position) by LSH band
    collisions confirmed by exact Jaccard >= `cfg.threshold` (and, with `cfg.containment`, by containment
    of the shorter document in the longer), and pick each cluster's survivor.

    Memory: one slice of one band (`cfg.plan_memory_mb`), the union-find array (4 bytes a document up to
    2**31 documents), the pairs that failed verification, and the clustered documents."""
    starts = np.concatenate([[0], np.cumsum([len(f.lengths) for f in files])]).astype(np.int64)
    total = int(starts[-1])
    ok = np.concatenate(eligible) if total else np.zeros(0, bool)
    uf = UnionFind(total)
    bands = files[0].band_keys.shape[0] if files else 0
    entries = sum(f.band_keys.shape[1] for f in files)
    parts = max(1, -(-entries * _ENTRY_BYTES // (cfg.plan_memory_mb << 20)))
    rejected: set[tuple[int, int]] = set()
    candidates = verified = 0

    @functools.lru_cache(maxsize=4096)  # bounded: candidate pairs come grouped by their first document
    def shingles_of(g: int) -> np.ndarray:
        f = int(np.searchsorted(starts, g, side="right")) - 1
        return files[f].shingle_set(g - starts[f])

    for band in range(bands):
        for keys, idx in band_slices(files, band, starts, parts):
            keep = ok[idx]
            keys, idx = keys[keep], idx[keep]
            if len(keys) < 2:
                continue
            starts_of_runs = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
            ends_of_runs = np.concatenate([starts_of_runs[1:], [len(keys)]])
            for s, e in zip(starts_of_runs[ends_of_runs - starts_of_runs > 1], ends_of_runs[ends_of_runs - starts_of_runs > 1]):
                head = int(idx[s])  # the earliest member: compare the others with it
                head_set = None
                for j in range(s + 1, e):
                    other = int(idx[j])
                    if uf.find(head) == uf.find(other):  # already joined, in this band or an earlier one
                        continue
                    pair = (head, other)
                    if pair in rejected:
                        continue
                    candidates += 1
                    if cfg.verify and head_set is None:
                        head_set = shingles_of(head)
                    if not cfg.verify or jaccard(head_set, shingles_of(other)) >= cfg.threshold:
                        verified += 1
                        uf.union(head, other)
                    else:  # only failed checks are remembered, so memory grows with false candidates only
                        rejected.add(pair)
    keep_policy = cfg.keep
    if cfg.containment and total:
        with_shingles = np.flatnonzero(ok & np.concatenate([f.has_shingles for f in files]))
        sample = np.uint64(cfg.containment_sample)
        sampled = []  # only the sampled shingles stay in memory; full sets are read again to verify
        for g in with_shingles.tolist():
            s = shingles_of(g)
            sampled.append(s[s % sample == 0])
        for i, j in containment_candidates(sampled, cfg.containment_sample, cfg.containment_max_postings):
            a, b = int(with_shingles[i]), int(with_shingles[j])
            candidates += 1
            if uf.find(a) != uf.find(b) and containment(shingles_of(a), shingles_of(b)) >= cfg.containment_threshold:
                verified += 1
                uf.union(a, b)
        if keep_policy == "first":  # a partial copy is the shorter one: keeping the first could drop the whole
            keep_policy = "longest"
    return _choose_survivors(files, starts, uf.roots(), keep_policy, candidates, verified)


def _choose_survivors(files, starts, roots, keep_policy, candidates, verified) -> NearDuplicatePlan:
    """Each cluster's survivor by the keep policy (ties: the first document), for the clustered documents."""
    moved = np.flatnonzero(roots != np.arange(len(roots)))
    members = np.union1d(moved, roots[moved]).astype(np.int64)
    member_roots = roots[members]
    group_roots, group_size = np.unique(member_roots, return_counts=True)
    size = group_size[np.searchsorted(group_roots, member_roots)]
    if keep_policy == "first":  # the root of a union-find set is its smallest member
        survivor = member_roots.astype(np.int64)
    else:
        values = _gather(files, starts, "lengths" if keep_policy == "longest" else "scores", members).astype(np.float64)
        values = np.where(np.isnan(values), -np.inf, values)  # documents without a score lose to any scored one
        order = np.lexsort((members, -values, member_roots))  # per cluster: best first, then earliest
        best = order[np.searchsorted(member_roots[order], group_roots)]
        survivor = members[best][np.searchsorted(group_roots, member_roots)]
    kept_id = _gather(files, starts, "ids", survivor)
    return NearDuplicatePlan(starts, members, survivor, size, kept_id, candidates, verified)


class MinhashFilter(CorpusStep):
    """Pass 2: removes near-duplicates (reason `near_duplicate`); every document of a cluster records
    `metadata["minhash"] = {"cluster": <survivor id>, "size": n}`."""

    name = "minhash"

    def __init__(self, plan_dir: str | Path, output_dir: str | Path):
        super().__init__(output_dir)
        self.plan_dir = str(plan_dir)

    def run(self, data, rank: int = 0, world_size: int = 1):
        with np.load(Path(self.plan_dir) / f"{rank:05d}.npz", allow_pickle=False) as z:
            self._clustered = (z["position"], z["keep"], z["kept_id"], z["size"])
        self._position = 0  # the plan lists positions among exactly the documents that reach this step
        self._next = 0  # the next clustered document, in position order
        yield from super().run(data, rank, world_size)

    def apply(self, doc: Document) -> bool | tuple[bool, str]:
        position, keep, kept_id, size = self._clustered
        i, k = self._position, self._next
        self._position += 1
        if k == len(position) or position[k] != i:
            return True
        self._next += 1
        doc.metadata["minhash"] = {"cluster": str(kept_id[k]), "size": int(size[k])}
        return True if keep[k] else (False, "near_duplicate")
