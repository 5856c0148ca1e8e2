"""`evalsuite run` against an OpenAI-compatible endpoint: a real `evalsuite serve` process on loopback serving a
tiny local model, checked against evaluating the same model folder directly; and the answer cache."""

import json
from pathlib import Path

import pytest

from conftest import SAMPLE, read_jsonl, serve_process

torch = pytest.importorskip("torch", reason="the eval extra is part of the dev install (make install-dev)")
requests = pytest.importorskip("requests")

from evalsuite.run import TASKS_DIR, EvalError, RunConfig, run
from evalsuite.serve import serving
from train.tiny import build_tiny_gpt2

CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant:{% endif %}")


def tiny_model(folder: Path, train_texts: list[str] | None = None, seed: int = 0) -> Path:
    corpus = [r["text"] for r in read_jsonl(SAMPLE / "web_en.jsonl")[:200]]
    return build_tiny_gpt2(folder, corpus, train_texts, seed=seed, chat_template=CHAT_TEMPLATE)


def suite(folder: Path, *tasks: str) -> str:
    path = folder / f"{'-'.join(tasks)}.yaml"
    path.write_text(f"name: s\ntasks: [{', '.join(tasks)}]\n")
    return str(path)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`evalsuite serve` in its own process on a free port; yields (model folder, base URL)."""
    base = tmp_path_factory.mktemp("endpoint")
    english = [r["text"] for r in read_jsonl(TASKS_DIR / "data" / "ppl_en.jsonl")]
    drills = [f"Q: {q['question']}?\nA: {q['answer'][0]}\n" for q in read_jsonl(TASKS_DIR / "data" / "nq_open.jsonl")[:20]]
    folder = tiny_model(base / "model", english[:4] + drills * 20)  # it answers some questions: non-empty generations
    with serve_process(folder) as url:
        yield base, folder, url


def test_endpoint_gives_the_local_models_figures(served):
    base, folder, url = served
    tasks = suite(base, "cl_ppl_en", "cl_arc_easy", "cl_nq_open")
    local = run(RunConfig(model=str(folder), suite=tasks, output=str(base / "local"), limit=20, batch_size=8))
    remote = run(RunConfig(model=url, suite=tasks, output=str(base / "remote"), limit=20, batch_size=8))
    assert remote.metrics["cl_arc_easy"] == local.metrics["cl_arc_easy"]
    bpb_local, bpb_remote = (r.metrics["cl_ppl_en"]["bits_per_byte,none"] for r in (local, remote))
    assert abs(bpb_remote - bpb_local) < 1e-3 * bpb_local
    generated = [[s["filtered_resps"] for s in read_jsonl(r.output / "samples" / "cl_nq_open.jsonl")]
                 for r in (local, remote)]
    assert generated[0] == generated[1] and any(g[0] for g in generated[0])  # greedy: the same answers
    manifests = [json.loads((r.output / "run.json").read_text()) for r in (local, remote)]
    assert manifests[1]["model_fingerprint"] == manifests[0]["model_fingerprint"]  # the server reports it
    assert manifests[1]["served_model"] == "model"
    # a local copy of the tokenizer instead of the server's /tokenize: the same figures
    tokenized = run(RunConfig(model=url + "/completions", suite=suite(base, "cl_arc_easy"), output=str(base / "tok"),
                              limit=20, tokenizer=str(folder)))
    assert tokenized.metrics["cl_arc_easy"] == local.metrics["cl_arc_easy"]


def test_chat_endpoint_runs_generation_and_refuses_loglikelihood(served):
    base, _, url = served
    chat = run(RunConfig(model=url + "/chat/completions", suite=suite(base, "cl_nq_open"), output=str(base / "chat"),
                         limit=5, apply_chat_template=True))
    assert 0.0 <= chat.metrics["cl_nq_open"]["exact_match,none"] <= 1.0
    prompt = read_jsonl(chat.output / "samples" / "cl_nq_open.jsonl")[0]["arguments"][0][0][0]
    assert json.loads(prompt)[0]["role"] == "user"  # sent as chat messages
    # the server renders them with the model's chat template: the same text as completing the rendered prompt
    messages = [{"role": "user", "content": "Q: who wrote the declaration of independence?\nA:"}]
    said = requests.post(url + "/chat/completions", json={"messages": messages, "max_tokens": 12}, timeout=30).json()
    rendered = "user: Q: who wrote the declaration of independence?\nA:\nassistant:"
    completed = requests.post(url + "/completions", json={"prompt": rendered, "max_tokens": 12}, timeout=30).json()
    assert said["choices"][0]["message"]["content"] == completed["choices"][0]["text"]
    with pytest.raises(EvalError, match="(?i)loglikelihood"):
        run(RunConfig(model=url + "/chat/completions", suite=suite(base, "cl_arc_easy"), output=str(base / "chat2"),
                      limit=5, apply_chat_template=True))


def test_server_answers_bad_requests_with_clear_errors(served):
    _, _, url = served
    bad = requests.post(url + "/completions", data=b"{not json", timeout=30)
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
    bad = requests.post(url + "/completions", json={"prompt": 3}, timeout=30)
    assert bad.status_code == 400 and "'prompt'" in bad.json()["error"]["message"]
    long = requests.post(url + "/completions", json={"prompt": "word " * 600, "max_tokens": 1}, timeout=30)
    assert long.status_code == 400 and "context of 512 tokens" in long.json()["error"]["message"]
    echo = requests.post(url + "/completions", json={"prompt": "The nation", "max_tokens": 0, "echo": True,
                                                     "logprobs": 2}, timeout=30).json()["choices"][0]
    assert echo["text"] == "The nation" and echo["logprobs"]["token_logprobs"][0] is None
    assert all(lp <= 0 for lp in echo["logprobs"]["token_logprobs"][1:])
    assert all(len(top) == 2 for top in echo["logprobs"]["top_logprobs"][1:])


def test_api_key_and_unreachable_endpoint(tmp_path: Path):
    folder = tiny_model(tmp_path / "m")
    with serving(folder, api_key="s3cret") as url:
        assert requests.get(url + "/models", timeout=30).status_code == 401
        ok = requests.get(url + "/models", headers={"Authorization": "Bearer s3cret"}, timeout=30)
        assert ok.json()["data"][0]["id"] == "m"
    with pytest.raises(EvalError, match="cannot list its models"):
        run(RunConfig(model=url, suite=suite(tmp_path, "cl_arc_easy"), output=str(tmp_path / "r"), limit=2))


def test_cache_is_keyed_by_the_weights(served, tmp_path: Path):
    """A re-run is answered from the cache; other weights behind the same cache file are not (lm-eval's own
    cache would return the first model's answers); the served copy of a model shares its local entries."""
    _, folder, url = served
    other = tiny_model(tmp_path / "other", seed=1)
    tasks, cache = suite(tmp_path, "cl_ppl_en", "cl_arc_easy"), str(tmp_path / "answers.sqlite")

    def cached_run(model: str, name: str):
        result = run(RunConfig(model=model, suite=tasks, output=str(tmp_path / name), limit=10, cache=cache))
        return result, json.loads((result.output / "run.json").read_text())["cache"]

    first, stats = cached_run(str(folder), "first")
    assert stats["hits"] == 0 and stats["misses"] > 0
    again, stats_again = cached_run(str(folder), "again")
    assert stats_again == {"hits": stats["misses"], "misses": 0} and again.metrics == first.metrics
    changed, stats_other = cached_run(str(other), "other")
    assert stats_other == {"hits": 0, "misses": stats["misses"]}
    assert changed.metrics["cl_ppl_en"] != first.metrics["cl_ppl_en"]
    _, stats_served = cached_run(url, "served")
    assert stats_served["hits"] > 0
