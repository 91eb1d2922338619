"""`accel demo`: the main job on the embedded model, end to end, as two commands a user could type:

    accel search ecad --budget 5m --out runs/demo/ecad       # a Pareto front of cache plans (calibration prompts)
    accel bench --plans runs/demo/ecad --out runs/demo        # the front vs the peers and baselines (held-out prompts)
"""

from __future__ import annotations

from pathlib import Path


def demo_commands(out: str | Path, steps: int, model: str, budget: str, n_prompts: int) -> list[list[str]]:
    out = Path(out)
    common = ["--model", model, "--steps", str(steps)]
    return [["search", "ecad", *common, "--budget", budget, "--out", str(out / "ecad")],
            ["bench", *common, "--plans", str(out / "ecad"), "--n-prompts", str(n_prompts), "--out", str(out)]]


def run_demo(out: str | Path, steps: int = 20, model: str = "builtin:shapes", budget: str = "5m",
             n_prompts: int = 32) -> int:
    from accel.cli import main

    for argv in demo_commands(out, steps, model, budget, n_prompts):
        print("$ accel " + " ".join(argv), flush=True)
        code = main(argv)
        if code:
            return code
    return 0
