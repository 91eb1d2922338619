"""The `accel` command: generate, search, bench, show, demo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from accel.errors import AccelError

BUILTIN = "builtin:shapes"


def load_pipeline(spec: str):
    """``builtin:shapes`` (the embedded model, offline) or a local diffusers pipeline folder."""
    if spec == BUILTIN:
        from accel.calibration import load_pipeline as load_builtin

        return load_builtin()
    path = Path(spec)
    if not path.exists():
        raise AccelError(f"--model {spec!r}: expected {BUILTIN} or a local diffusers pipeline folder; none found. "
                         "accel loads no weights from the network.")
    from diffusers import DiffusionPipeline

    return DiffusionPipeline.from_pretrained(path, local_files_only=True)


def plan_from_args(pipe, args):
    """A Plan from --plan FILE or --cache full|every:N, for ``args.steps`` steps."""
    import accel

    if getattr(args, "plan", None):
        return accel.Plan.load(args.plan)
    layout = accel.layout_of(pipe.transformer)
    kind, _, n = (args.cache or "full").partition(":")
    if kind == "full":
        return accel.Plan(cache=accel.CacheSchedule.full(layout, args.steps))
    if kind == "every" and n.isdigit() and int(n) >= 1:
        return accel.Plan(cache=accel.CacheSchedule.every(layout, args.steps, int(n)))
    raise AccelError(f"--cache {args.cache!r}: expected 'full' or 'every:N' (FORA, recompute every N steps).")


def cmd_generate(args) -> int:
    import accel
    from accel.calibration import save_grid

    pipe = load_pipeline(args.model)
    plan = plan_from_args(pipe, args)
    with accel.accelerate(pipe, plan) as handle:
        images = pipe(args.prompts, num_inference_steps=args.steps, seed=args.seed, output_type="pt",
                      **({"guidance_scale": args.guidance} if args.guidance is not None else {}))
        stats = handle.stats()
    path = save_grid(images, args.out)
    print(f"wrote {path} ({len(args.prompts)} image(s), {args.steps} steps); {stats.summary()}")
    return 0


def cmd_show(args) -> int:
    import accel

    path = Path(args.path)
    if path.is_dir() or path.name == "front.json":
        from accel.search.front import ParetoFront

        print(describe_front(ParetoFront.load(path)))
    else:
        print(describe_plan(accel.Plan.load(path)))
    return 0


def describe_front(front) -> str:
    """A front as a table, fastest last, with the baselines measured beside it."""
    cols = [c for c in ("flop_ratio", "psnr", "ssim", "acc_prompt", "acc_shape", "frechet")
            if front.points and c in front.points[0].metrics]
    lines = [f"{front.model}, {front.steps} steps; objectives: {', '.join(front.objectives)}; "
             f"{len(front.points)} plans on the front",
             "| plan | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    rows = [(p.name or "-", p.metrics) for p in front.points] + [(b["name"], b["metrics"]) for b in front.baselines]
    for name, m in rows:
        lines.append(f"| {name} | " + " | ".join(f"{m[c]:.3f}" if c in m else "-" for c in cols) + " |")
    return "\n".join(lines)


def describe_plan(plan) -> str:
    """A plan as text: a header, then one row per cell with one character per step (# computes, . reuses)."""
    lines = [f"model: {plan.model_name or '-'}   attention: {plan.attention}   text K/V reuse: {plan.reuse_text_kv}"]
    if plan.produced_by:
        lines.append("produced by: " + ", ".join(f"{k}={v}" for k, v in plan.produced_by.items()))
    if plan.metrics:
        lines.append("measured: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                              for k, v in plan.metrics.items()))
    if plan.cache is None:
        return "\n".join(lines + ["no cache schedule: every cell computes at every step"])
    sched = plan.cache
    lines.append(f"{sched.steps} steps x {sched.layout.n_cells} cells, {sched.reuse_fraction:.1%} reused")
    width = max(len(f"{b}.{c}") for b, c in sched.layout.cells)
    lines.append(" " * (width + 2) + "".join(str(s % 10) for s in range(sched.steps)))
    for i, (b, c) in enumerate(sched.layout.cells):
        lines.append(f"{b + '.' + c:<{width}}  " + "".join("#" if m else "." for m in sched.mask[:, i]))
    return "\n".join(lines)


def cmd_demo(args) -> int:
    from accel.search.demo import run_demo

    return run_demo(args.out, steps=args.steps, model=args.model, budget=args.budget, n_prompts=args.n_prompts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="accel", description="Faster diffusion transformers at a quality you choose.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="generate images (optionally under a plan) and write a PNG grid")
    p.add_argument("prompts", nargs="+")
    p.add_argument("--model", default=BUILTIN)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--guidance", type=float, default=None, help="CFG scale (default: the model's)")
    p.add_argument("--plan", help="a plan JSON file")
    p.add_argument("--cache", help="instead of --plan: 'full' or 'every:N'")
    p.add_argument("-o", "--out", default="out.png")
    p.set_defaults(run=cmd_generate)

    p = sub.add_parser("show", help="print a plan or a front folder as a table")
    p.add_argument("path")
    p.set_defaults(run=cmd_show)

    from accel.search.cli import add_arguments as add_search

    add_search(sub)
    from accel.search.bench_cli import add_arguments as add_bench

    add_bench(sub)

    p = sub.add_parser("demo", help="the main job: an ECAD search, then the bench of its front vs the peers (held-out prompts)")
    p.add_argument("--model", default=BUILTIN)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--budget", default="5m", help="the search's wall-clock budget")
    p.add_argument("--n-prompts", type=int, default=32, help="held-out prompts for the bench")
    p.add_argument("--out", default="runs/demo")
    p.set_defaults(run=cmd_demo)

    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except AccelError as e:
        print(f"accel: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
