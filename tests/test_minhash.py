import json
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE, read_jsonl
from corpus.config import MinhashConfig, load_config
from corpus.minhash import (
    MinHasher,
    Shingler,
    SignatureFile,
    UnionFind,
    band_keys,
    candidate_probability,
    jaccard,
    optimal_bands_rows,
    plan_near_duplicates,
)
from corpus.pipeline import clean
from corpus.synth import plant


def sets_with_jaccard(j: float, size: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pool = np.unique(rng.integers(0, 2**63, size=4 * size, dtype=np.uint64))[: 3 * size]
    inter = round(2 * j * size / (1 + j))  # |A|=|B|=size, |A&B| = 2js/(1+j)
    a = np.sort(pool[:size])
    b = np.sort(np.concatenate([pool[:inter], pool[size : 2 * size - inter]]))
    return a, b


def signature_file(sets: list[np.ndarray], lengths: list[int], ids: list[str], cfg: MinhashConfig,
                   scores: list[float] | None = None) -> SignatureFile:
    bands, rows = cfg.bands_rows()
    keys = band_keys(MinHasher(bands * rows, cfg.seed).signatures(sets), bands, rows)
    return SignatureFile.from_keys(keys, has_shingles=np.ones(len(sets), bool), shingles=np.concatenate(sets),
                                   offsets=np.concatenate([[0], np.cumsum([len(x) for x in sets])]),
                                   lengths=np.array(lengths), scores=np.array(scores or [np.nan] * len(sets), dtype=float),
                                   ids=np.array(ids))


def dense(plan, rank: int, ids: list[str]) -> tuple[list[bool], list[str], list[int]]:
    """The sparse plan of one task as (survives, survivor id, cluster size) for every document."""
    keep, kept, size = [True] * len(ids), list(ids), [1] * len(ids)
    for pos, k, kid, n in zip(*plan.for_task(rank)):
        keep[pos], kept[pos], size[pos] = bool(k), str(kid), int(n)
    return keep, kept, size


@pytest.mark.parametrize("j", [0.0, 0.3, 0.6, 0.9])
def test_signature_agreement_estimates_jaccard(j: float):
    a, b = sets_with_jaccard(j, seed=int(j * 10))
    assert abs(jaccard(a, b) - j) < 0.01
    sig = MinHasher(512, seed=3).signatures([a, b])
    estimate = float((sig[0] == sig[1]).mean())
    assert abs(estimate - jaccard(a, b)) < 4 * np.sqrt(max(j * (1 - j), 0.01) / 512)


def test_signatures_of_a_batch_equal_one_by_one_and_differ_by_seed():
    sets = [sets_with_jaccard(0.5, size=s, seed=s)[0] for s in (3, 50, 700)]
    hasher = MinHasher(64, seed=1)
    together = hasher.signatures(sets)
    for i, s in enumerate(sets):
        assert np.array_equal(together[i], hasher.signatures([s])[0])
    assert not np.array_equal(together, MinHasher(64, seed=2).signatures(sets))
    # every permutation is a different function: columns of a signature are not copies of each other
    assert len(np.unique(together[2])) > 60


def test_band_keys_change_only_in_the_band_of_a_changed_row():
    sig = np.random.default_rng(0).integers(0, 2**32, size=(1, 20), dtype=np.uint64).astype(np.uint32)
    other = sig.copy()
    other[0, 13] ^= 1  # row 13 lies in band 3 of 5 bands x 4 rows
    keys = band_keys(np.vstack([sig, other]), bands=5, rows=4)
    assert [bool(x) for x in keys[0] == keys[1]] == [True, True, True, False, True]
    # rows beyond bands*rows are ignored, and a band's key depends on row order
    swapped = sig.copy()
    swapped[0, [0, 1]] = swapped[0, [1, 0]]
    assert band_keys(swapped, 5, 4)[0, 0] != band_keys(sig, 5, 4)[0, 0]


def test_union_find_merges_transitively_with_smallest_root():
    uf = UnionFind(8)
    for x, y in [(5, 3), (3, 7), (1, 2), (7, 6)]:
        uf.union(x, y)
    assert uf.roots().tolist() == [0, 1, 1, 3, 4, 3, 3, 3]
    assert [uf.find(i) for i in range(8)] == uf.roots().tolist()
    uf.union(6, 2)
    assert set(uf.roots().tolist()) == {0, 1, 4}


def test_banding_derived_from_threshold():
    b, r = optimal_bands_rows(0.6, 112, 0.2, 0.8)
    assert b * r <= 112
    assert candidate_probability(0.75, b, r) > 0.99 and candidate_probability(0.2, b, r) < 0.05
    with pytest.raises(ValueError, match="set both bands and rows"):
        MinhashConfig(bands=4)


def test_shingles_by_script():
    s = Shingler(MinhashConfig(word_ngram=3, char_ngram=2))
    assert np.array_equal(s.shingles("Hello, World! Said the 2 dogs", "en"), s.shingles("hello world said THE 7 dogs", "en"))
    assert len(s.shingles("一二三四五", "zh")) == 4  # character bigrams
    assert len(s.shingles("一二三四五", "en")) == 1  # one "word" shorter than n: one shingle, not none
    assert len(s.shingles("?!", "en")) == 0


def test_plan_clusters_verified_pairs_and_keeps_by_policy():
    shingler = Shingler(MinhashConfig())
    base = "the quick brown fox jumps over the lazy dog near the bank of the river on a sunny day " * 3
    texts = [base, base.replace("sunny", "rainy"), "a completely different text about databases and indexes " * 4,
             base + " and then it went home to sleep for the whole long night"]
    cfg = MinhashConfig(threshold=0.5, keep="longest")
    sets = [shingler.shingles(t, "en") for t in texts]
    f = signature_file(sets, [len(t) for t in texts], ["a", "b", "c", "d"], cfg)
    ids = ["a", "b", "c", "d"]
    plan = plan_near_duplicates([f], [np.ones(4, bool)], cfg)
    assert dense(plan, 0, ids) == ([False, False, True, True], ["d", "d", "c", "d"], [3, 3, 1, 3])  # longest survives
    assert (plan.clusters, plan.removed) == (1, 2)
    first = plan_near_duplicates([f], [np.array([True, True, True, False])], cfg.model_copy(update={"keep": "first"}))
    assert dense(first, 0, ids)[0] == [True, False, True, True]  # d is not eligible (removed earlier)
    scored = signature_file(sets, [len(t) for t in texts], ["a", "b", "c", "d"], cfg, scores=[0.2, 0.9, 0.5, float("nan")])
    by_score = plan_near_duplicates([scored], [np.ones(4, bool)], MinhashConfig(threshold=0.5, keep="score", keep_score_field="q"))
    assert dense(by_score, 0, ids)[0] == [False, True, True, False]
    with pytest.raises(ValueError, match="keep_score_field"):
        MinhashConfig(keep="score")


@pytest.mark.parametrize("lang,source", [("en", "web_en.jsonl"), ("zh", "web_zh.jsonl")])
def test_planted_near_duplicates_are_removed_through_corpus_clean(tmp_path: Path, lang: str, source: str):
    records = [r for r in read_jsonl(SAMPLE / source) if len(r["text"]) > 400]
    records = [r for r in records if lang == "zh" or r["source"].startswith("c4")][:60]
    planted = plant(records, rate=0.05, lang=lang, seed=11)
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records + planted))
    result = clean([str(path)], tmp_path / "out", load_config(), steps=["langid", "minhash"])
    removed = [r for r in read_jsonl(next((tmp_path / "out" / "removed" / "minhash").glob("*.gz")))]
    pairs = {r["id"]: r["planted_from"] for r in planted}
    caught = {r["id"] for r in removed if r["id"] in pairs or r["id"] in pairs.values()}
    assert len(caught) >= 0.9 * len(planted)  # recall on planted pairs
    assert all(r["id"] in pairs or r["id"] in pairs.values() for r in removed)  # nothing else removed
    assert all(r["metadata"]["minhash"]["cluster"] in (r["id"], pairs.get(r["id"]), "near-" + r["id"]) for r in removed)
    assert result.stats["near_duplicates"]["removed"] == len(removed)


def test_containment_catches_a_partial_copy_that_jaccard_misses():
    shingler = Shingler(MinhashConfig())
    rng = np.random.default_rng(5)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    word = lambda: "".join(rng.choice(letters, 6))  # no digits: digits are normalised away
    words = [word() for _ in range(900)]
    source = " ".join(words)
    excerpt = " ".join(words[300:420])  # a sixth of the source, copied
    unrelated = " ".join(word() for _ in range(200))
    sets = [shingler.shingles(t, "en") for t in (source, excerpt, unrelated)]
    assert jaccard(sets[0], sets[1]) < 0.2
    cfg = MinhashConfig(containment=True)
    f = signature_file(sets, [len(source), len(excerpt), len(unrelated)], ["src", "cut", "u"], cfg)
    without = plan_near_duplicates([f], [np.ones(3, bool)], cfg.model_copy(update={"containment": False}))
    assert dense(without, 0, ["src", "cut", "u"])[0] == [True, True, True]
    plan = plan_near_duplicates([f], [np.ones(3, bool)], cfg)
    # the excerpt goes, the longer source stays
    assert dense(plan, 0, ["src", "cut", "u"]) == ([True, False, True], ["src", "src", "u"], [2, 2, 1])


def test_clustering_in_key_range_slices_equals_in_memory(monkeypatch):
    """External-memory planning: a band read in many key-range slices over several task files gives the
    same clusters as one slice; a run of equal keys must never be split between slices."""
    rng = np.random.default_rng(9)
    cfg = MinhashConfig(threshold=0.5)
    tasks = []
    for t in range(3):
        sets, ids = [], []
        for i in range(40):
            a, b = sets_with_jaccard(rng.choice([0.2, 0.7, 0.95]), size=120, seed=t * 100 + i)
            sets += [a, b] if i % 3 else [a]
            ids += [f"{t}-{i}a", f"{t}-{i}b"] if i % 3 else [f"{t}-{i}a"]
        sets.append(tasks[0][0][0] if tasks else sets[0])  # an exact copy across tasks
        ids.append(f"{t}-copy")
        tasks.append((sets, ids))
    files = [signature_file(sets, [len(x) for x in sets], ids, cfg) for sets, ids in tasks]
    eligible = [np.ones(len(ids), bool) for _, ids in tasks]
    whole = plan_near_duplicates(files, eligible, cfg)
    monkeypatch.setattr("corpus.minhash._ENTRY_BYTES", 2 << 20)  # 2 MB a key at 8 MB: ~50 key-range slices a band
    sliced = plan_near_duplicates(files, eligible, cfg.model_copy(update={"plan_memory_mb": 8}))
    assert whole.removed >= 50 and whole.verified_pairs == sliced.verified_pairs
    for rank, (_, ids) in enumerate(tasks):
        assert dense(whole, rank, ids) == dense(sliced, rank, ids)
    assert dense(whole, 1, tasks[1][1])[1][-1] == "0-0a"  # the copy in task 1 points at task 0's original


def test_metadata_score_path():
    from corpus.minhash import metadata_score

    assert metadata_score({"quality": {"score": 0.7}}, "quality.score") == 0.7
    assert np.isnan(metadata_score({"quality": {"score": "high"}}, "quality.score"))
    assert np.isnan(metadata_score({}, "quality.score")) and np.isnan(metadata_score({"a": 1}, None))


def test_character_tokens_skip_every_kind_of_whitespace_only():
    s = Shingler(MinhashConfig())
    assert len(s.token_hashes("中 文\u3000字\n符\u00a0。", "zh")) == 4  # punctuation stripped, spaces skipped
    assert len(s.token_hashes("\U0002a700字", "zh")) == 2  # characters beyond the BMP count too
