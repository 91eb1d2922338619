"""`accel demo`: the main job on the embedded model, end to end.

1. An ECAD search of cache plans on calibration prompts writes a Pareto front folder (plans, front.json, front.png).
2. A bench on held-out prompts puts the front beside FORA every-n and plain step reduction: exact FLOP ratio,
   quality against full compute, and paired wall-clock speed-ups; it writes table.md, bench.png and grid.png.
(The peers' cache hooks join the bench as they land.)
"""

from __future__ import annotations

from pathlib import Path

import torch

import accel
from accel.search.bench import Method, Result, run_methods

HELDOUT = 32
WALL_PAIRS = 3
COLUMNS = ["psnr", "ssim", "acc_shape", "acc_prompt", "frechet"]


def run_demo(out: str | Path, steps: int = 20, model: str = "builtin:shapes", budget_s: float = 300.0,
             n_calibration: int = 16) -> Path:
    from accel.calibration import load_prompts, save_grid
    from accel.calibration.metrics import AttributeClassifier
    from accel.cli import describe_front, load_pipeline
    from accel.search.ecad import ECADConfig, run_ecad
    from accel.search.samplers import shapes_sampler

    out = Path(out)
    pipe = load_pipeline(model)
    calibration = load_prompts("calibration")[:n_calibration]
    print(f"1/2 ECAD search: {model}, {len(calibration)} calibration prompts, {steps} steps, "
          f"budget {budget_s / 60:.1f} min -> {out / 'ecad'}")
    front = run_ecad(shapes_sampler(pipe, calibration, steps), out / "ecad", ECADConfig(steps=steps, budget_s=budget_s),
                     model_name=model)
    print(describe_front(front))

    prompts = load_prompts("test")[:HELDOUT]
    layout = accel.layout_of(pipe.transformer)
    methods = [Method(p.name, "accel ECAD front", plan=p.plan) for p in front.points]
    methods += [Method(f"FORA every-{n}", "FORA every-n", plan=accel.Plan(cache=accel.CacheSchedule.every(layout, steps, n)))
                for n in (2, 3, 4)]
    methods += [Method(f"{k} steps", "fewer steps", steps=k) for k in (10, 7, 5)]
    timed = {m.name for m in methods if m.family != "accel ECAD front"}
    near = [p for p in front.points if p.metrics["psnr"] >= 30]  # near-lossless on calibration prompts
    if near:
        timed.add(max(near, key=lambda p: p.metrics["flop_ratio"]).name)
    print(f"\n2/2 bench on {len(prompts)} held-out prompts ({len(methods)} methods)")
    full, results = run_methods(pipe, prompts, steps, methods, AttributeClassifier.load(), wall_prompts=prompts[:8],
                                wall_pairs=WALL_PAIRS, wall_for=timed)
    table = bench_table(full, results)
    (out / "table.md").write_text(table + "\n")
    bench_plot(results, out / "bench.png")
    shown = [full] + [r for r in results if r.method.family != "accel ECAD front"] + results[: len(front.points)][-2:]
    save_grid(torch.cat([r.images[:8] for r in shown]), out / "grid.png", nrow=8)
    print(table)
    print(f"wrote {out}/ecad/ (front), {out}/table.md, {out}/bench.png, {out}/grid.png")
    return out


def bench_table(full: Result, results: list[Result]) -> str:
    head = "| method | FLOP ratio | wall speed-up (median, IQR) | " + " | ".join(COLUMNS) + " |"
    lines = [head, "|---" * (len(COLUMNS) + 3) + "|"]
    for r in [full, *results]:
        wall = f"{r.wall[0]:.2f}x ({r.wall[1]:.2f}-{r.wall[2]:.2f})" if r.wall else "-"
        lines.append(f"| {r.method.name} | {r.flop_ratio:.2f}x | {wall} | "
                     + " | ".join(f"{r.metrics[c]:.3f}" for c in COLUMNS) + " |")
    return "\n".join(lines)


def bench_plot(results: list[Result], path: Path, metric: str = "psnr") -> Path:
    from accel.search.plots import speedup_plot

    series: dict[str, list] = {}
    for r in results:
        series.setdefault(r.method.family, []).append((r.flop_ratio, r.metrics[metric]))
    return speedup_plot(series, path, f"{metric} vs full compute (held-out prompts)", y_cap=60)
