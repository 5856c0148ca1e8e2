import tempfile
from pathlib import Path

import pytest

from conftest import SAMPLE, output_files
from corpus.config import load_config
from corpus.pipeline import clean

INPUTS = [str(SAMPLE / "web_en.jsonl"), str(SAMPLE / "web_zh.jsonl")]


@pytest.mark.slow
def test_ray_executor_output_is_identical_to_local(tmp_path: Path):
    import ray

    local = load_config(overrides={"reader": {"split_mb": 0.25}, "executor": {"workers": 2}})
    ref = clean(INPUTS, tmp_path / "local", local)
    # a real local Ray cluster (head node in this process); a short temp dir keeps Ray's socket paths valid
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=ray_tmp)
    try:
        cfg = local.model_copy(update={"executor": local.executor.model_copy(update={"kind": "ray"})})
        result = clean(INPUTS, tmp_path / "ray", cfg)
        assert ray.cluster_resources().get("CPU") == 2
    finally:
        ray.shutdown()
    assert result.stats["executor"] == "ray"
    assert result.stats["output"]["docs"] == ref.stats["output"]["docs"] > 0
    assert output_files(result.output_dir) == output_files(ref.output_dir)
