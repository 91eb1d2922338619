"""Held-out check of an ECAD front: does it dominate FORA every-2/3/4 and plain step reduction?

Evaluates every plan of the front, FORA every-n and the same sampler with fewer steps on held-out prompts (never
the calibration ones), then, for each baseline, looks for a front plan with at least its FLOP ratio and equal or
better quality on every reported metric. Reports the largest near-lossless speed-up (PSNR >= 30 dB vs full compute
and whole-prompt attribute accuracy within 1 point of full compute) with its paired wall-clock ratio.

    python benchmarks/ecad_heldout.py runs/ecad [--prompts 64] [--pairs 5]
"""

from __future__ import annotations

import argparse

import accel
from accel.calibration import load_pipeline, load_prompts
from accel.calibration.metrics import AttributeClassifier
from accel.search.bench import Method, dominated_by, run_methods
from accel.search.front import ParetoFront

METRICS = ["psnr", "ssim", "acc_shape", "acc_colour", "acc_size", "acc_position", "acc_background", "acc_prompt"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("front")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    front = ParetoFront.load(args.front)
    pipe = load_pipeline()
    steps = front.steps
    prompts = load_prompts("test")[: args.prompts]
    layout = accel.layout_of(pipe.transformer)
    methods = [Method(p.name, "ECAD front", plan=p.plan) for p in front.points]
    baselines = [Method(f"fora-{n}", "FORA every-n", plan=accel.Plan(cache=accel.CacheSchedule.every(layout, steps, n)))
                 for n in (2, 3, 4)]
    baselines += [Method(f"steps-{k}", "fewer steps", steps=k) for k in (10, 7, 5)]
    classifier = AttributeClassifier.load()
    full, results = run_methods(pipe, prompts, steps, methods + baselines, classifier)
    ours, theirs = results[: len(methods)], results[len(methods):]
    print(f"\nheld-out: {len(prompts)} prompts, {steps} steps; full compute: "
          + ", ".join(f"{k} {full.metrics[k]:.3f}" for k in ("acc_prompt", "acc_shape", "frechet")))
    print("| method | FLOP ratio | " + " | ".join(METRICS + ["frechet"]) + " |")
    print("|---" * (len(METRICS) + 3) + "|")
    for r in theirs + ours:
        print(f"| {r.method.name} | {r.flop_ratio:.2f} | " + " | ".join(f"{r.metrics[k]:.3f}" for k in METRICS + ["frechet"]) + " |")
    print()
    for b in theirs:
        d = dominated_by(b, ours, METRICS)
        print(f"{b.method.name:9s} ({b.flop_ratio:.2f}x, PSNR {b.metrics['psnr']:.1f}): "
              + (f"dominated by {d.method.name} ({d.flop_ratio:.2f}x, PSNR {d.metrics['psnr']:.1f})" if d
                 else "NOT dominated by any front plan"))
    near = [r for r in ours if r.metrics["psnr"] >= 30 and r.metrics["acc_prompt"] >= full.metrics["acc_prompt"] - 0.01]
    if near:
        best = max(near, key=lambda r: r.flop_ratio)
        from accel.search.bench import paired_wall

        wall = paired_wall(pipe, best.method, prompts[:16], steps, 0, args.pairs)
        print(f"\nlargest near-lossless speed-up: {best.method.name}: FLOPs {best.flop_ratio:.2f}x, wall {wall[0]:.2f}x "
              f"(IQR {wall[1]:.2f}-{wall[2]:.2f}, {args.pairs} pairs, 16 prompts), PSNR {best.metrics['psnr']:.1f}, "
              f"prompt accuracy {best.metrics['acc_prompt']:.3f} vs {full.metrics['acc_prompt']:.3f}")
    else:
        print("\nno front plan is near-lossless on the held-out prompts")


if __name__ == "__main__":
    main()
