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
_MAX_BATCH_SHINGLES = 1 << 14  # bounds the (shingles x num_perm) work matrix to ~15 MB
_PUNCT = re.compile(r"[^\w\s]|_")
_DIGITS = re.compile(r"\d")
# whitespace lookup by code point: every whitespace character is at or below U+3000; the last entry (False)
# stands for every code point above
_IS_SPACE = np.array([chr(c).isspace() for c in range(0x3001)] + [False], dtype=bool)
_CHAR_SALT = np.uint64(0x5851F42D4C957F2D)


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

    def token_hashes(self, text: str, lang: str) -> np.ndarray:
        """One uint64 hash per token, in order."""
        if lang in NO_SPACE_LANGUAGES:
            # characters are the tokens: hash their code points in one vectorised pass, no Python loop
            codes = np.frombuffer(self.normalize(text).encode("utf-32-le"), dtype=np.uint32)
            codes = codes[~_IS_SPACE[np.minimum(codes, len(_IS_SPACE) - 1)]]
            return _mix64(codes.astype(np.uint64) + _CHAR_SALT)
        tokens = self.tokens(text, lang)
        cache = self._token_hashes
        if len(cache) > 2_000_000:
            cache.clear()
        return np.fromiter(
            (cache[t] if t in cache else cache.setdefault(t, xxhash.xxh3_64_intdigest(t)) for t in tokens),
            dtype=np.uint64, count=len(tokens),
        )

    def shingles(self, text: str, lang: str) -> np.ndarray:
        """Sorted unique uint64 shingle hashes (empty when the text has no token at all)."""
        ids = self.token_hashes(text, lang)
        if not len(ids):
            return np.zeros(0, dtype=np.uint64)
        n = self.cfg.char_ngram if lang in NO_SPACE_LANGUAGES else self.cfg.word_ngram
        n = min(n, len(ids))
        m = len(ids) - n + 1
        h = ids[:m].copy()
        for k in range(1, n):  # polynomial combination of the n token hashes, wrapping mod 2**64
            h = h * _NGRAM_MULT + ids[k : k + m]
        return np.unique(_mix64(h))


class MinHasher:
    """`num_perm` min-wise hash functions (multiply-shift: (a*x + b) >> 32, a odd), fixed by a seed."""

    def __init__(self, num_perm: int, seed: int):
        rng = np.random.default_rng(seed)
        self.a = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self.b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)

    def signatures(self, shingle_sets: list[np.ndarray]) -> np.ndarray:
        """(documents, num_perm) uint32 signatures; every set must be non-empty."""
        out = np.empty((len(shingle_sets), len(self.a)), dtype=np.uint32)
        start = 0
        while start < len(shingle_sets):  # batches of documents, bounded in shingles for memory
            end, total = start, 0
            while end < len(shingle_sets) and (end == start or total + len(shingle_sets[end]) <= _MAX_BATCH_SHINGLES):
                total += len(shingle_sets[end])
                end += 1
            batch = shingle_sets[start:end]
            if total > _MAX_BATCH_SHINGLES:  # one very long document: running minimum over chunks
                x = batch[0]
                sig = np.full(len(self.a), np.iinfo(np.uint32).max, dtype=np.uint32)
                for i in range(0, len(x), _MAX_BATCH_SHINGLES):
                    sig = np.minimum(sig, self._permute(x[i : i + _MAX_BATCH_SHINGLES]).min(axis=0))
                out[start] = sig
            else:
                x = np.concatenate(batch)
                offsets = np.cumsum([0] + [len(s) for s in batch[:-1]])
                out[start:end] = np.minimum.reduceat(self._permute(x), offsets, axis=0)
            start = end
        return out

    def _permute(self, x: np.ndarray) -> np.ndarray:
        y = np.multiply(x[:, None], self.a[None, :])  # in place from here on: one matrix, not four
        y += self.b[None, :]
        y >>= np.uint64(32)
        return y.astype(np.uint32)


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
        self.parent = np.arange(n, dtype=np.int64)

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
    """What pass 1 stores per task, one .npy file per field in `_work/minhash/<rank>/`. Band keys are
    stored band-major and, with the shingles, memory-mapped on load, so planning holds one band at a time."""

    keys: np.ndarray  # (bands, docs) uint64; columns of documents without shingles are unused
    has_shingles: np.ndarray  # (docs,) bool
    shingles: np.ndarray  # concatenated uint64
    offsets: np.ndarray  # (docs + 1,) int64
    lengths: np.ndarray  # (docs,) int64 characters
    scores: np.ndarray  # (docs,) float64 keep score from metadata, NaN when absent
    ids: np.ndarray  # (docs,) str

    FIELDS = ("keys", "has_shingles", "shingles", "offsets", "lengths", "scores", "ids")
    MAPPED = ("keys", "shingles")

    def shingle_set(self, i: int) -> np.ndarray:
        return np.asarray(self.shingles[self.offsets[i] : self.offsets[i + 1]])

    def save(self, folder: Path) -> None:
        for name in self.FIELDS:
            atomic_write_npy(folder / f"{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, folder: Path) -> "SignatureFile":
        return cls(**{n: np.load(folder / f"{n}.npy", mmap_mode="r" if n in cls.MAPPED else None,
                                 allow_pickle=False) for n in cls.FIELDS})


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
            block = np.zeros((len(pending), bands), dtype=np.uint64)
            if nonempty:
                keys = band_keys(hasher.signatures(nonempty), bands, rows)
                block[np.array([len(s) > 0 for s in pending])] = keys
            key_blocks.append(block)
            pending.clear()

        for doc in data:
            with self.track_time():
                s = shingler.shingles(doc.text, document_language(doc))
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
        record = SignatureFile(
            keys=np.ascontiguousarray(np.concatenate(key_blocks).T) if key_blocks else np.zeros((bands, 0), np.uint64),
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
    """Per task: which documents survive, and for each the id of its cluster's survivor and cluster size."""

    keep: list[np.ndarray]
    kept_id: list[np.ndarray]
    cluster_size: list[np.ndarray]
    clusters: int
    removed: int
    candidate_pairs: int  # candidate pairs checked (pairs already in one cluster are skipped)
    verified_pairs: int


def plan_near_duplicates(files: list[SignatureFile], eligible: list[np.ndarray], cfg: MinhashConfig) -> NearDuplicatePlan:
    """Cluster the eligible documents of all tasks (global order = task, then position) by LSH band
    collisions confirmed by exact Jaccard >= `cfg.threshold` (and, with `cfg.containment`, by containment
    of the shorter document in the longer), and pick each cluster's survivor."""
    sizes = [len(f.lengths) for f in files]
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    total = int(starts[-1])
    ok = np.concatenate([e & f.has_shingles for e, f in zip(eligible, files)]) if total else np.zeros(0, bool)
    owner = np.repeat(np.arange(len(files)), sizes)
    uf = UnionFind(total)
    bands = files[0].keys.shape[0] if files else 0
    rejected: set[tuple[int, int]] = set()
    candidates = verified = 0

    def shingles_of(g: int) -> np.ndarray:
        f = owner[g]
        return files[f].shingle_set(g - starts[f])

    eligible_ids = np.flatnonzero(ok)
    for band in range(bands):  # one band in memory at a time
        column = np.concatenate([np.asarray(f.keys[band]) for f in files])
        idx = eligible_ids
        keys = column[idx]
        order = np.argsort(keys, kind="stable")
        keys, idx = keys[order], idx[order]
        if len(keys) < 2:
            continue
        starts_of_runs = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
        ends_of_runs = np.concatenate([starts_of_runs[1:], [len(keys)]])
        for s, e in zip(starts_of_runs, ends_of_runs):
            if e - s < 2:
                continue
            head = int(idx[s])  # the earliest member (the sort is stable): compare the others with it
            for j in range(s + 1, e):
                other = int(idx[j])
                if uf.find(head) == uf.find(other):  # already joined, in this band or an earlier one
                    continue
                pair = (head, other)
                if pair in rejected:
                    continue
                candidates += 1
                if not cfg.verify or jaccard(shingles_of(head), shingles_of(other)) >= cfg.threshold:
                    verified += 1
                    uf.union(head, other)
                else:  # only failed checks are remembered, so memory grows with false candidates only
                    rejected.add(pair)
    lengths = np.concatenate([f.lengths for f in files]) if total else np.zeros(0, np.int64)
    scores = np.concatenate([f.scores for f in files]) if total else np.zeros(0, np.float64)
    keep_policy = cfg.keep
    if cfg.containment and total:
        sets = [shingles_of(int(g)) for g in eligible_ids]
        for i, j in containment_candidates(sets, cfg.containment_sample, cfg.containment_max_postings):
            a, b = int(eligible_ids[i]), int(eligible_ids[j])
            candidates += 1
            if uf.find(a) != uf.find(b) and containment(sets[i], sets[j]) >= cfg.containment_threshold:
                verified += 1
                uf.union(a, b)
        if keep_policy == "first":  # a partial copy is the shorter one: keeping the first could drop the whole
            keep_policy = "longest"
    roots = uf.roots()
    ids = np.concatenate([f.ids for f in files]) if total else np.zeros(0, "U1")
    size = np.bincount(roots, minlength=total)[roots] if total else np.zeros(0, np.int64)
    clustered = np.flatnonzero(size > 1).tolist()  # ascending: the first member is met first
    survivor: dict[int, int] = {}
    for g in clustered:
        r = int(roots[g])
        best = survivor.setdefault(r, g)
        if keep_policy == "longest" and lengths[g] > lengths[best]:
            survivor[r] = g
        elif keep_policy == "score" and (np.isnan(scores[best]) and not np.isnan(scores[g]) or scores[g] > scores[best]):
            survivor[r] = g  # highest score wins; documents without one lose to any scored document
    keep = np.ones(total, dtype=bool)
    kept_id = ids.copy()
    for g in clustered:
        s = survivor[int(roots[g])]
        keep[g] = s == g
        kept_id[g] = ids[s]
    split = lambda a: [a[starts[i] : starts[i + 1]] for i in range(len(files))]
    return NearDuplicatePlan(split(keep), split(kept_id), split(size), len(survivor),
                             int((~keep).sum()), candidates, verified)


class MinhashFilter(CorpusStep):
    """Pass 2: removes near-duplicates (reason `near_duplicate`); every document of a cluster records
    `metadata["minhash"] = {"cluster": <survivor id>, "size": n}`."""

    name = "minhash"

    def __init__(self, plan_dir: str | Path, output_dir: str | Path):
        super().__init__(output_dir)
        self.plan_dir = str(plan_dir)

    def run(self, data, rank: int = 0, world_size: int = 1):
        with np.load(Path(self.plan_dir) / f"{rank:05d}.npz", allow_pickle=False) as z:
            self._keep, self._kept_id, self._size = z["keep"], z["kept_id"], z["size"]
        self._position = 0  # the plan lists exactly the documents that reach this step, in order
        yield from super().run(data, rank, world_size)

    def apply(self, doc: Document) -> bool | tuple[bool, str]:
        i = self._position
        self._position += 1
        if self._size[i] > 1:
            doc.metadata["minhash"] = {"cluster": str(self._kept_id[i]), "size": int(self._size[i])}
        return True if self._keep[i] else (False, "near_duplicate")
