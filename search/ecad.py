"""ECAD: a genetic search of cache plans (pymoo NSGA-II) on calibration prompts, producing a Pareto front.

Objectives: exact FLOP ratio (maximised) and one or more quality metrics on the calibration prompts (default PSNR
against full compute). Every evaluation lands in the study store before it counts; a killed search started again
with the same settings replays the genetic algorithm from its seed, answers every evaluation it already made from
the store, and carries on where it stopped: nothing is lost and no finished evaluation is repeated.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

import accel
from accel.search.evaluator import PlanEvaluator, tensor_digest, weights_digest
from accel.search.front import FrontPoint, ParetoFront, sense
from accel.search.operators import CacheMutation, CacheRepair, Grid, heuristic_seeds
from accel.search.store import StudyStore, mask_from_key


@dataclass
class ECADConfig:
    steps: int = 20
    population: int = 24  # individuals per generation (ECAD: 72 for PixArt, 24 for FLUX)
    budget_s: float = 600.0  # wall-clock budget; the search stops before a generation that would not fit
    max_generations: int | None = None  # stop after this many generations (None: until the budget is spent)
    seed: int = 0
    quality: tuple[str, ...] = ("psnr",)  # quality objectives: psnr, ssim, acc_prompt, acc_shape, frechet
    bit_rate: float | None = None  # per-bit flip rate of the mutation (default 2 / genome length)
    structure_rate: float = 0.5  # chance a child also gets a whole-step / block / component move
    crossover_points: int = 4  # ECAD: PointCrossover(n_points=4, prob=0.9)
    crossover_prob: float = 0.9
    share_prefixes: bool = True  # plans with a common prefix of steps share its computation
    reuse_text_kv: bool = True
    seeds: dict = field(default_factory=dict)  # extra named seed schedules (e.g. BAC plans), name -> CacheSchedule

    def setup(self, model: str, prompts: list[str]) -> dict:
        """What makes two searches the same (the store refuses to mix searches that differ)."""
        d = asdict(self)
        d.pop("budget_s"), d.pop("max_generations"), d.pop("seeds")
        d["extra_seeds"] = sorted(self.seeds)
        return {"method": "ecad", "model": model, "prompts": prompts, **d}


def run_ecad(sampler, out: str | Path, config: ECADConfig | None = None, model_name: str = "builtin:shapes",
             storage: str | None = None, log=print, started: float | None = None) -> ParetoFront:
    """Search cache plans for ``sampler`` (search/samplers.py: its denoiser, prompts, noise and steps).
    The budget counts from ``started`` (a time.perf_counter() value; default: now), so a command line can
    count its own start-up, and it keeps room for writing the front at the end."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.pntx import PointCrossover

    config = config or ECADConfig()
    out = Path(out)
    objectives = ["flop_ratio", *config.quality]
    unknown = [q for q in config.quality if q not in ("psnr", "ssim", "acc_prompt", "acc_shape", "frechet")]
    if unknown or not config.quality:
        raise accel.AccelError(f"unknown quality objective(s) {unknown}; choose from psnr, ssim, acc_prompt, "
                               "acc_shape, frechet.")
    if sampler.steps != config.steps:
        raise accel.AccelError(f"the sampler runs {sampler.steps} steps but the search is set for {config.steps}.")
    setup = {**config.setup(model_name, sampler.prompts), "noise": tensor_digest(sampler.start()),
             "weights": weights_digest(sampler.denoiser)}
    store = StudyStore(storage or out / "study.db", "ecad", setup, objectives)
    started = time.perf_counter() if started is None else started
    evaluator = PlanEvaluator(sampler, config.reuse_text_kv, config.share_prefixes, cache_dir=out)
    layout = evaluator.layout
    grid = Grid(layout, config.steps)
    seeds = {**heuristic_seeds(layout, config.steps), **config.seeds}
    seed_masks = np.array([s.mask.reshape(-1) for s in seeds.values()])[: config.population]
    if len(seed_masks) < config.population:  # fill with mutated copies of the seeds
        rng = np.random.default_rng(config.seed)
        extra = seed_masks[rng.integers(len(seed_masks), size=config.population - len(seed_masks))]
        extra = CacheRepair(grid)._do(None, CacheMutation(grid, 0.05, 1.0)._do(None, extra, random_state=rng),
                                      random_state=rng)
        seed_masks = np.concatenate([seed_masks, extra])

    problem = Problem(n_var=grid.length, n_obj=len(objectives), xl=0, xu=1, vtype=bool)
    algorithm = NSGA2(pop_size=config.population, sampling=seed_masks,
                      crossover=PointCrossover(n_points=config.crossover_points, prob=config.crossover_prob),
                      mutation=CacheMutation(grid, config.bit_rate, config.structure_rate),
                      repair=CacheRepair(grid), eliminate_duplicates=True)
    algorithm.setup(problem, termination=("n_gen", 10**9), seed=config.seed)

    front = None
    generation, gen_times, finish_s = 0, [], 0.0
    try:
        while config.max_generations is None or generation < config.max_generations:
            elapsed = time.perf_counter() - started
            expected = np.median(gen_times) if gen_times else 0.0
            if elapsed + expected + finish_s > config.budget_s and generation > 0:
                break
            t0 = time.perf_counter()
            pop = algorithm.ask()
            masks = list(grid.masks(pop.get("X")))
            known = sum(m in store for m in masks)
            results = evaluator.evaluate(masks, store, generation)
            pop.set("F", np.array([[-sense(o) * r[o] for o in objectives] for r in results]))
            algorithm.tell(infills=pop)
            took = time.perf_counter() - t0
            t_front = time.perf_counter()
            front = _front(store, grid, objectives, model_name, config)
            finish_s = 2 * (time.perf_counter() - t_front) + 1.0  # the final front, its plot and files
            if known < len(masks):
                gen_times.append(time.perf_counter() - t0)
            elapsed = time.perf_counter() - started
            eta = max(0.0, config.budget_s - elapsed)
            log(f"gen {generation:3d} | evals {len(store):4d} (+{len(masks) - known}, {known} from store) | "
                f"front {len(front.points):2d} | {_best(front)} | {took:5.1f}s | budget left {eta / 60:4.1f} min")
            generation += 1
    except KeyboardInterrupt:
        log("interrupted: writing the front from every finished evaluation")
    front = _front(store, grid, objectives, model_name, config, evaluator.rollout.stats)
    front.baselines = _baselines(store, grid, seeds, objectives)
    front.save(out)
    return front


def _front(store, grid, objectives, model_name, config, stats=None) -> ParetoFront:
    layout = grid.layout
    points = []
    for key, metrics in store.items():
        mask = mask_from_key(key, (grid.steps, grid.cells))
        plan = accel.Plan(cache=accel.CacheSchedule(layout, mask), reuse_text_kv=config.reuse_text_kv,
                          model_name=model_name, produced_by={"method": "ecad", "seed": config.seed})
        points.append(FrontPoint(plan, dict(metrics)))
    produced = {"method": "ecad", "config": {k: v for k, v in asdict(config).items() if k != "seeds"},
                "evaluations": len(store)}
    if stats is not None:
        produced["rollout"] = asdict(stats)
    return ParetoFront.from_evaluations(points, objectives, model=model_name, steps=grid.steps, produced_by=produced)


def _baselines(store, grid, seeds, objectives) -> list[dict]:
    out = []
    for name, sched in seeds.items():
        metrics = store.get(sched.mask)
        if metrics is not None and name.startswith("fora-"):
            out.append({"name": name, "family": "FORA every-n", "metrics": metrics})
    return out


def _best(front: ParetoFront) -> str:
    q = front.quality_metric
    near = [p for p in front.points if p.metrics.get("psnr", 0) >= 30]
    fastest = max(near, key=lambda p: p.metrics["flop_ratio"]) if near else None
    top = max(p.metrics["flop_ratio"] for p in front.points) if front.points else 0
    head = f"fastest {top:.2f}x"
    if fastest is not None:
        head += f", at PSNR>=30: {fastest.metrics['flop_ratio']:.2f}x ({q} {fastest.metrics[q]:.3g})"
    return head
