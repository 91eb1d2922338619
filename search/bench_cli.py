"""`accel bench`: accel's plans side by side with full compute, fewer steps, FORA and the peers users would pick.

Every method runs on the same held-out prompts, seed and step count and is compared with full compute (exact FLOP
ratio, PSNR/SSIM against full compute, attribute accuracy, Frechet distance). It writes table.md, table.csv,
bench.png and grid.png, and prints the headline: at near-lossless quality, accel's best plan against the best peer,
by FLOPs and by paired wall-clock.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

import accel
from accel.errors import AccelError
from accel.search.bench import Method, Result, paired_speedup, paired_wall, run_methods
from accel.search.peers import PEERS, peer_methods

BASELINES = ("full", "steps", "fora")
DEFAULT_METHODS = ",".join((*BASELINES, *PEERS, "plans"))
NEAR_LOSSLESS_PSNR = 30.0  # dB against full compute
NEAR_LOSSLESS_ACC = 0.01  # whole-prompt accuracy may drop at most 1 point below full compute's


def add_arguments(sub) -> None:
    p = sub.add_parser("bench", help="accel's plans beside full compute, fewer steps, FORA and the peer caches")
    p.add_argument("--model", default="builtin:shapes")
    p.add_argument("--prompts", help="held-out prompts, one per line (default: the embedded model's test set)")
    p.add_argument("--n-prompts", type=int, default=32, help="use the first N prompts (default 32)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", default=DEFAULT_METHODS,
                   help=f"comma-separated: {', '.join(BASELINES)}, peers (all of them) or any of "
                        f"{', '.join(PEERS)}, and plans (default: all)")
    p.add_argument("--plans", nargs="*", default=[], help="front folders and/or plan JSON files")
    p.add_argument("--out", default="runs/bench")
    p.add_argument("--wall-pairs", type=int, default=3, help="paired alternating runs per wall-clock measure")
    p.add_argument("--wall-prompts", type=int, default=8, help="prompts per timed generation")
    p.add_argument("--wall-all", action="store_true", help="time every method against full compute, not only "
                                                            "the headline pair")
    p.set_defaults(run=run)


# ---- methods ----------------------------------------------------------------------------------------------------
def parse_methods(text: str) -> list[str]:
    names = []
    for name in (t.strip() for t in text.split(",") if t.strip()):
        names += list(PEERS) if name == "peers" else [name]
    unknown = [n for n in names if n not in (*BASELINES, *PEERS, "plans")]
    if unknown:
        raise AccelError(f"--methods: unknown {', '.join(unknown)}; expected {', '.join(BASELINES)}, peers, "
                         f"{', '.join(PEERS)} or plans.")
    return list(dict.fromkeys(names))


def plan_methods(paths: list[str], steps: int) -> list[Method]:
    """A front folder becomes one family (a line on the plot); each plan file is a family of its own (a point)."""
    from accel.search.front import ParetoFront

    methods = []
    for path in map(Path, paths):
        if path.is_dir():
            front = ParetoFront.load(path)
            if front.steps != steps:
                raise AccelError(f"--plans {path}: the front was searched at {front.steps} steps, not --steps {steps}.")
            how = front.produced_by.get("method", "")
            family = f"accel {how + ' ' if how else ''}front ({path.name})"
            methods += [Method(p.name or f"{path.name}[{i}]", family, plan=p.plan) for i, p in enumerate(front.points)]
        elif path.is_file():
            plan = accel.Plan.load(path)
            if plan.steps is not None and plan.steps != steps:
                raise AccelError(f"--plans {path}: the plan was made for {plan.steps} steps, not --steps {steps}.")
            methods.append(Method(path.stem, f"accel plan {path.stem}", plan=plan))
        else:
            raise AccelError(f"--plans {path}: no such front folder or plan file.")
    return methods


def build_methods(pipe, names: list[str], steps: int, plans: list[str], log=print) -> list[Method]:
    methods: list[Method] = []
    if "steps" in names:
        methods += [Method(f"{k} steps", "fewer steps", steps=k)
                    for k in sorted({max(1, round(steps / d)) for d in (2, 3, 4)} - {steps}, reverse=True)]
    if "fora" in names:
        layout = accel.layout_of(pipe.transformer)
        methods += [Method(f"FORA every-{n}", "FORA every-n", plan=accel.Plan(cache=accel.CacheSchedule.every(
            layout, steps, n))) for n in (2, 3, 4, 5) if n < steps]
    peers = [n for n in names if n in PEERS]
    if peers:
        methods += peer_methods(pipe, steps, peers, log=log)
    if "plans" in names:
        if not plans:
            log("plans: none given (--plans FRONT_FOLDER or PLAN.json ...); benching the others")
        methods += plan_methods(plans, steps)
    return methods


def is_accel(m: Method) -> bool:
    return m.family.startswith("accel")


# ---- the headline -----------------------------------------------------------------------------------------------
def near_lossless(r: Result, full: Result) -> bool:
    ok = r.metrics["psnr"] >= NEAR_LOSSLESS_PSNR
    if "acc_prompt" in full.metrics:
        ok = ok and r.metrics["acc_prompt"] >= full.metrics["acc_prompt"] - NEAR_LOSSLESS_ACC - 1e-9
    return ok


def headline_pair(full: Result, results: list[Result]) -> tuple[Result | None, Result | None]:
    """The fastest (by FLOPs) near-lossless accel plan and the fastest near-lossless peer."""
    ok = [r for r in results if near_lossless(r, full)]
    best = [max((r for r in ok if pick(r.method)), key=lambda r: r.flop_ratio, default=None)
            for pick in (is_accel, lambda m: m.apply is not None)]
    return best[0], best[1]


def headline(full: Result, results: list[Result], wall: tuple | None) -> str:
    rule = (f"PSNR >= {NEAR_LOSSLESS_PSNR:g} dB vs full compute"
            + (" and prompt accuracy within 1 point of full compute" if "acc_prompt" in full.metrics else ""))
    ours, peer = headline_pair(full, results)
    if ours is None or peer is None:
        missing = "no accel plan" if ours is None else "no peer"
        return f"HEADLINE: {missing} reaches near-lossless quality ({rule}); no ratio to report."
    text = (f"HEADLINE at near-lossless quality ({rule}): accel {ours.method.name} {ours.flop_ratio:.2f}x vs best "
            f"peer {peer.method.name} {peer.flop_ratio:.2f}x -> {ours.flop_ratio / peer.flop_ratio:.2f}x by FLOPs")
    if wall is not None:
        text += f"; {wall[0]:.2f}x by wall-clock (paired median, IQR {wall[1]:.2f}-{wall[2]:.2f})"
    return text


def dominance_report(full: Result, results: list[Result]) -> str:
    """Per accel family: which other methods one of its plans dominates (at least the FLOP ratio, and equal or
    better on every reported metric), and which it does not."""
    from accel.search.bench import dominated_by

    cols = metric_columns(full)
    others = [r for r in results if not is_accel(r.method)]
    lines = [f"dominance on {', '.join(cols)} at equal or higher FLOP ratio:"]
    for family in dict.fromkeys(r.method.family for r in results if is_accel(r.method)):
        ours = [r for r in results if r.method.family == family]
        beaten = [(b, dominated_by(b, ours, cols)) for b in others]
        lines.append(f"  {family}: dominates {sum(d is not None for _, d in beaten)}/{len(beaten)}")
        for b, d in beaten:
            lines.append(f"    {b.method.name} ({b.flop_ratio:.2f}x): "
                         + (f"by {d.method.name} ({d.flop_ratio:.2f}x)" if d else "not dominated"))
    return "\n".join(lines)


# ---- outputs ----------------------------------------------------------------------------------------------------
def metric_columns(full: Result) -> list[str]:
    head = ["psnr", "ssim"]
    accuracies = sorted(k for k in full.metrics if k.startswith("acc_"))
    return head + accuracies + [k for k in ("frechet",) if k in full.metrics]


def write_tables(full: Result, results: list[Result], out: Path) -> str:
    cols = metric_columns(full)
    rows = [full, *results]
    md = ["| family | method | FLOP ratio | wall speed-up (median, IQR) | " + " | ".join(cols) + " |",
          "|---" * (len(cols) + 4) + "|"]
    for r in rows:
        wall = f"{r.wall[0]:.2f}x ({r.wall[1]:.2f}-{r.wall[2]:.2f})" if r.wall else "-"
        md.append(f"| {r.method.family} | {r.method.name} | {r.flop_ratio:.2f}x | {wall} | "
                  + " | ".join(f"{r.metrics[c]:.3f}" for c in cols) + " |")
    (out / "table.md").write_text("\n".join(md) + "\n")
    with open(out / "table.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["family", "method", "flop_ratio", "wall_median", "wall_q1", "wall_q3", *cols])
        for r in rows:
            w.writerow([r.method.family, r.method.name, f"{r.flop_ratio:.4f}",
                        *([f"{x:.4f}" for x in r.wall] if r.wall else ["", "", ""]),
                        *(f"{r.metrics[c]:.4f}" for c in cols)])
    return "\n".join(md)


def write_plot(results: list[Result], path: Path, title: str) -> Path:
    from accel.search.plots import speedup_plot

    series: dict[str, list] = {}
    for r in results:
        series.setdefault(r.method.family, []).append((r.flop_ratio, r.metrics["psnr"]))
    return speedup_plot(series, path, "PSNR vs full compute (dB, held-out prompts)", title=title, y_cap=60)


def write_grid(full: Result, results: list[Result], path: Path, n: int = 8) -> list[str]:
    """Rows on the same prompts: full compute, then each family's fastest near-lossless method (else its mildest)."""
    from accel.calibration import save_grid

    shown = [full]
    for family in dict.fromkeys(r.method.family for r in results):
        members = [r for r in results if r.method.family == family]
        ok = [r for r in members if near_lossless(r, full)]
        shown.append(max(ok, key=lambda r: r.flop_ratio) if ok else min(members, key=lambda r: r.flop_ratio))
    n = min(n, full.images.shape[0])
    save_grid(torch.cat([r.images[:n] for r in shown]), path, nrow=n)
    return [r.method.name for r in shown]


# ---- the command ------------------------------------------------------------------------------------------------
def read_heldout(path: str | None, n: int | None) -> list[str]:
    if path is None:
        from accel.calibration import load_prompts

        return load_prompts("test")[:n] if n else load_prompts("test")
    from accel.search.cli import read_prompts

    return read_prompts(path, n)


def run(args) -> int:
    from accel import cli

    names = parse_methods(args.methods)
    prompts = read_heldout(args.prompts, args.n_prompts)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pipe = cli.load_pipeline(args.model)
    classifier = None
    if args.model.startswith("builtin:"):
        from accel.calibration.metrics import AttributeClassifier

        classifier = AttributeClassifier.load()
    methods = build_methods(pipe, names, args.steps, args.plans)
    if not methods:
        raise AccelError("nothing to bench: --methods and --plans gave no method besides full compute.")
    wall_prompts = prompts[:args.wall_prompts]
    print(f"bench: {args.model}, {len(prompts)} held-out prompts, {args.steps} steps, {len(methods)} methods "
          f"+ full compute -> {out}")
    full, results = run_methods(pipe, prompts, args.steps, methods, classifier, seed=args.seed,
                                wall_prompts=wall_prompts, wall_pairs=args.wall_pairs if args.wall_all else 0)
    ours, peer = headline_pair(full, results)
    wall = None
    if args.wall_pairs and ours is not None and peer is not None:
        print(f"timing the headline pair: {ours.method.name} vs {peer.method.name} "
              f"({args.wall_pairs} alternating pairs, {len(wall_prompts)} prompts)")
        for r in (ours, peer):
            if r.wall is None:
                r.wall = paired_wall(pipe, r.method, wall_prompts, args.steps, args.seed, args.wall_pairs)
        wall = paired_speedup(pipe, peer.method, ours.method, wall_prompts, args.steps, args.seed, args.wall_pairs)
    table = write_tables(full, results, out)
    write_plot(results, out / "bench.png", f"{args.model}, {args.steps} steps, {len(prompts)} prompts")
    rows = write_grid(full, results, out / "grid.png")
    print(table)
    report = dominance_report(full, results)
    (out / "dominance.txt").write_text(report + "\n")
    print(report)
    line = headline(full, results, wall)
    (out / "headline.txt").write_text(line + "\n")
    print(line)
    print(f"grid.png rows (top to bottom): {', '.join(rows)}")
    print(f"wrote {out}/table.md, table.csv, bench.png, grid.png, dominance.txt, headline.txt")
    return 0
