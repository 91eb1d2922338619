"""Run a small ECAD search in its own process (the resume test kills it mid-search)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from accel.search.ecad import ECADConfig, run_ecad  # noqa: E402
from accel.search.samplers import shapes_sampler  # noqa: E402
from tiny import PROMPTS, tiny_pipeline  # noqa: E402

GENERATIONS = 4


def config():
    return ECADConfig(steps=5, population=8, max_generations=GENERATIONS, budget_s=1e9, seed=3)


def main(out: str) -> None:
    sampler = shapes_sampler(tiny_pipeline(), PROMPTS, 5)
    run_ecad(sampler, out, config(), log=lambda line: print(line, flush=True))


if __name__ == "__main__":
    main(sys.argv[1])
