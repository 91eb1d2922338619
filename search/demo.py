"""`accel demo`: the main job on the embedded model until the plan searches land in the CLI.

Runs full compute and FORA every-2/3/4 plans on held-out prompts and writes, under --out: table.md (FLOP ratio,
paired wall-clock speed-up, PSNR/SSIM vs full compute, attribute accuracy), grid.png (one row per plan) and the
plans with their measured metrics.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

import accel
from accel.search.evaluate import evaluate, reference

N_PROMPTS = 16
PAIRS = 5


def _wall_ratio(pipe, plan, prompts, steps, pairs=PAIRS) -> tuple[float, float, float]:
    """Median (and min, max) of full time / plan time over paired, alternating runs."""
    def run(p):
        start = time.perf_counter()
        if p is None:
            pipe(prompts, num_inference_steps=steps)
        else:
            with accel.accelerate(pipe, p):
                pipe(prompts, num_inference_steps=steps)
        return time.perf_counter() - start

    ratios = []
    for i in range(pairs):
        a, b = (run(None), run(plan)) if i % 2 == 0 else tuple(reversed((run(plan), run(None))))
        ratios.append(a / b)
    ratios.sort()
    return ratios[len(ratios) // 2], ratios[0], ratios[-1]


def run_demo(out: str | Path, steps: int = 20, model: str = "builtin:shapes") -> Path:
    from accel.calibration import load_prompts, save_grid
    from accel.calibration.metrics import AttributeClassifier
    from accel.cli import load_pipeline

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    pipe = load_pipeline(model)
    prompts = load_prompts("test")[:N_PROMPTS]
    classifier = AttributeClassifier.load()
    layout = accel.layout_of(pipe.transformer)
    print(f"{model}: {layout!r}; {len(prompts)} held-out prompts, {steps} steps")
    ref = reference(pipe, prompts, steps)
    plans = {"full": accel.Plan(cache=accel.CacheSchedule.full(layout, steps), model_name=model)}
    for n in (2, 3, 4):
        plans[f"every-{n}"] = accel.Plan(cache=accel.CacheSchedule.every(layout, steps, n), model_name=model,
                                         produced_by={"method": "fora", "n": n})
    rows, grids = [], []
    for name, plan in plans.items():
        ev = evaluate(pipe, plan, ref, classifier)
        wall = _wall_ratio(pipe, plan, prompts, steps)
        plan.metrics = {"flop_ratio": ev.flop_ratio, "wall_ratio": wall[0], **ev.metrics}
        plan.save(out / "plans" / f"{name}.json")
        rows.append((name, ev.flop_ratio, wall, ev.metrics))
        grids.append(ev.images[:8])
        print(f"  {name:8s} FLOPs {ev.flop_ratio:.2f}x  wall {wall[0]:.2f}x  PSNR {ev.metrics['psnr']:.1f}  "
              f"prompt acc {ev.metrics['acc_prompt']:.2f}")
    lines = ["| plan | FLOP ratio | wall speed-up (median, min-max of 5 pairs) | PSNR dB | SSIM | shape acc | prompt acc |",
             "|---|---|---|---|---|---|---|"]
    for name, flops, wall, m in rows:
        lines.append(f"| {name} | {flops:.2f}x | {wall[0]:.2f}x ({wall[1]:.2f}-{wall[2]:.2f}) | {m['psnr']:.1f} | "
                     f"{m['ssim']:.3f} | {m['acc_shape']:.2f} | {m['acc_prompt']:.2f} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    save_grid(torch.cat(grids), out / "grid.png", nrow=8)
    print("\n".join(lines))
    print(f"wrote {out}/table.md, {out}/grid.png, {out}/plans/")
    return out
