"""Wall time of a full-compute generation with the embedded model: 16 calibration prompts, 20 Euler steps, CFG.

    python benchmarks/generation_speed.py [--prompts 16] [--steps 20] [--repeats 5] [--threads N]

Prints each run and the median with its spread (one warm-up run first, not counted). The target on a 2-core CPU
is a median <= 5 s.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from accel.calibration import load_pipeline, load_prompts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    pipe = load_pipeline(device=a.device)
    prompts = load_prompts("calibration")[: a.prompts]
    scale = pipe.config.guidance_scale

    def run() -> float:
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        pipe(prompts, num_inference_steps=a.steps, guidance_scale=scale, seed=0)
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    run()  # warm-up
    times = [run() for _ in range(a.repeats)]
    for i, t in enumerate(times):
        print(f"run {i}: {t:.3f} s")
    print(f"{len(prompts)} prompts x {a.steps} steps, CFG {scale}, {a.device}, {torch.get_num_threads()} threads: "
          f"median {statistics.median(times):.3f} s (min {min(times):.3f}, max {max(times):.3f}) over {a.repeats} runs")


if __name__ == "__main__":
    main()
