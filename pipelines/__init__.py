"""The closed loop: clean, split, train, evaluate, score, filter and compare, defined in YAML
(`pipelines/loop-demo.yaml`), run stage by stage with a build-system cache, a group of stages repeated while
the gate accepts.

    from pipelines import load_loop, Loop
    states = Loop(load_loop("pipelines/loop-demo.yaml")).run()
"""

from pipelines.engine import Loop, LoopError, StageState
from pipelines.spec import LoopSpec, load_loop

__all__ = ["Loop", "LoopError", "LoopSpec", "StageState", "load_loop"]
