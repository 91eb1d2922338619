"""`accel search {ecad}`: argument parsing and the run, kept beside the searches."""

from __future__ import annotations

import re
from pathlib import Path

from accel.errors import AccelError


def parse_budget(text: str) -> float:
    """'10m', '90s', '1h', '1h30m' or plain seconds -> seconds."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise AccelError(f"--budget {text!r}: expected a duration such as 10m, 90s, 1h or 1h30m.")
    return sum(float(a) * {"h": 3600, "m": 60, "s": 1}[b] for a, b in parts)


def process_age() -> float:
    """Seconds since this process started (Linux: from /proc; elsewhere 0), so a budget can count the imports."""
    import os

    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def read_prompts(path: str | None, n: int | None) -> list[str]:
    if path is None:
        from accel.calibration import load_prompts

        prompts = load_prompts("calibration")
    else:
        p = Path(path)
        if not p.exists():
            raise AccelError(f"--prompts {path}: no such file (one prompt per line).")
        prompts = [ln.strip() for ln in p.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    if not prompts:
        raise AccelError(f"--prompts {path}: the file holds no prompts.")
    return prompts[:n] if n else prompts


def _common(p, out: str) -> None:
    p.add_argument("--model", default="builtin:shapes")
    p.add_argument("--prompts", help="calibration prompts, one per line (default: the embedded model's set)")
    p.add_argument("--n-prompts", type=int, default=16, help="use the first N prompts (default 16)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=out)


def parse_ks(text: str) -> list[int]:
    """'4..12', '4,6,8' or '6' -> a list of K."""
    try:
        if ".." in text:
            a, b = text.split("..")
            ks = list(range(int(a), int(b) + 1))
        else:
            ks = [int(k) for k in text.split(",")]
    except ValueError:
        ks = []
    if not ks or min(ks) < 2:
        raise AccelError(f"--k {text!r}: expected K >= 2 as '4..12', '4,6,8' or '6'.")
    return ks


def add_arguments(sub) -> None:
    from accel.search.bac import GRANULARITIES, SIMILARITIES, STEP_WEIGHTS

    p = sub.add_parser("search", help="search plans on calibration prompts and write a Pareto front folder")
    methods = p.add_subparsers(dest="method", required=True)
    e = methods.add_parser("ecad", help="genetic search of cache plans (NSGA-II)")
    _common(e, "runs/ecad")
    e.add_argument("--budget", default="10m", help="wall-clock budget, e.g. 10m")
    e.add_argument("--generations", type=int, default=None, help="stop after N generations")
    e.add_argument("--population", type=int, default=24)
    e.add_argument("--quality", default="psnr", help="comma-separated: psnr, ssim, acc_prompt, acc_shape, frechet")
    e.add_argument("--storage", help="optuna storage URL (default: sqlite file study.db in --out)")
    e.add_argument("--no-prefix-sharing", action="store_true", help="run every plan from step 0")
    e.add_argument("--seed-plans", help="a front folder (e.g. from `accel search bac`) whose plans seed the search")
    e.set_defaults(run=run_search)
    b = methods.add_parser("bac", help="block-wise adaptive caching from one calibration run (no search loop)")
    _common(b, "runs/bac")
    b.add_argument("--k", default="4..12", help="update steps per cell: '4..12', '4,6,8' or '6'")
    b.add_argument("--top-n", type=int, default=5, help="cells the Bubbling Union applies to (0: none)")
    b.add_argument("--similarity", default="cosine", choices=SIMILARITIES, help="cosine is BAC's own")
    b.add_argument("--chunk", type=int, default=8, help="prompts per calibration chunk (bounds memory)")
    b.add_argument("--granularity", default="cell", choices=GRANULARITIES,
                   help="cells sharing one schedule: each cell (BAC, default), each block, or the whole model")
    b.add_argument("--free-final", action="store_true", help="let the final step reuse (BAC always updates it)")
    b.add_argument("--step-weight", default="flat", choices=STEP_WEIGHTS,
                   help="weigh standing in for step t equally (BAC, default) or by (t + 1) / T")
    b.set_defaults(run=run_bac_command)


def _sampler(args):
    from accel.cli import load_pipeline
    from accel.search.samplers import shapes_sampler

    if args.model != "builtin:shapes":
        raise AccelError("the command line searches the embedded model; for another model build a sampler "
                         "(accel.search.samplers.FlowEulerSampler) and call the search's run function.")
    prompts = read_prompts(args.prompts, args.n_prompts)
    pipe = load_pipeline(args.model)
    return pipe, prompts, shapes_sampler(pipe, prompts, args.steps, seed=args.seed)


def run_search(args) -> int:
    import time

    started = time.perf_counter() - process_age()  # --budget is the whole command's wall time
    from accel.cli import describe_front
    from accel.search.ecad import ECADConfig, run_ecad

    seeds = {}
    if args.seed_plans:
        from accel.search.front import ParetoFront

        seeds = {p.name: p.plan.cache for p in ParetoFront.load(args.seed_plans).points}
    config = ECADConfig(steps=args.steps, population=args.population, budget_s=parse_budget(args.budget),
                        max_generations=args.generations, seed=args.seed,
                        quality=tuple(q.strip() for q in args.quality.split(",") if q.strip()),
                        share_prefixes=not args.no_prefix_sharing, seeds=seeds)
    pipe, prompts, sampler = _sampler(args)
    print(f"ECAD search on {args.model}: {len(prompts)} prompts, {args.steps} steps, population {config.population}, "
          f"budget {config.budget_s / 60:.1f} min -> {args.out}")
    front = run_ecad(sampler, args.out, config, model_name=args.model, storage=args.storage, started=started)
    print(describe_front(front))
    print(f"wrote {args.out}/front.json, {args.out}/front.png and {len(front.points)} plans in {args.out}/plans/")
    return 0


def run_bac_command(args) -> int:
    from accel.cli import describe_front
    from accel.search.bac import run_bac
    from accel.search.samplers import shapes_sampler

    ks = parse_ks(args.k)
    pipe, prompts, sampler = _sampler(args)
    chunks = [shapes_sampler(pipe, prompts[i:i + args.chunk], args.steps, seed=args.seed)
              for i in range(0, len(prompts), args.chunk)]
    front, _ = run_bac(chunks, sampler, args.out, ks, args.top_n, args.similarity, model_name=args.model,
                       granularity=args.granularity, force_final=not args.free_final, step_weight=args.step_weight)
    print(describe_front(front))
    print(f"wrote {args.out}/front.json, {args.out}/front.png and {len(front.points)} plans in {args.out}/plans/")
    return 0
