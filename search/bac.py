"""BAC: block-wise adaptive caching from one calibration run (Ji et al., ICLR 2026), for any model accel wraps.

1. Calibration: full-compute generations in observe mode. Per cell, a step x step similarity matrix of its outputs
   (cosine by default; L1, L2, MSE or 1-D Wasserstein distances) and its caching-error score, the mean over step
   pairs of mean |X_i - X_j|. Prompts are processed in chunks and only sums are kept between chunks (Gram matrices,
   L1 and Wasserstein sums), so memory holds one chunk's outputs, never the whole run.
2. Adaptive Caching Scheduler: per cell, K update steps that split the run into segments maximising the summed
   similarity of each segment's cached output (from its first step) to every step it stands in for; dynamic
   programming in O(K T^2). The first and the final step always update.
3. Bubbling Union: the top-n cells by error score also update whenever any feed-forward cell at the same or a
   deeper block updates (feed-forward branches have no normalisation inside, so upstream caching error flows
   through them linearly).

Three options beyond the paper, all off by default: ``granularity`` lets a block's cells or all the model's cells
share one schedule (the DP on the sum of their matrices), ``force_final=False`` lets the final step reuse, and
``step_weight='ramp'`` counts standing in for a late step more than for an early one. On the embedded DiT each
helps: cells refreshing at different steps feed each other stale inputs, an update spent on the last step serves
that step alone, and features change fastest at high noise, where an error matters least, so unweighted
similarity spends updates too early (benchmarks/RESULTS.md has the figures).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

import accel
from accel.adapters.base import Layout
from accel.errors import PlanError

SIMILARITIES = ("cosine", "l1", "l2", "mse", "wasserstein")  # cosine is maximised, the distances minimised
GRANULARITIES = ("cell", "block", "model")  # which cells share one schedule; BAC's own is "cell"
STEP_WEIGHTS = ("flat", "ramp")  # how much standing in for step t counts: equally (BAC), or (t + 1) / T
FFN_ROLES = ("ff", "context_ff", "mlp_in", "mlp_out")


@dataclass
class CellStatistics:
    layout: Layout
    steps: int
    matrices: dict[str, np.ndarray]  # similarity name -> (cells, T, T)
    error_score: np.ndarray  # (cells,) mean over step pairs i < j of mean |X_i - X_j|
    peak_feature_bytes: int  # the most output memory held at once (one chunk)


def _flatten(out) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out.detach().reshape(-1).float().cpu()
    parts = [_flatten(o) for o in out if o is not None] if isinstance(out, (tuple, list)) else []
    return torch.cat(parts) if parts else torch.zeros(0)


def calibrate(model: torch.nn.Module, generations: Iterable[Callable[[], object]], steps: int,
              similarities: Iterable[str] = SIMILARITIES) -> CellStatistics:
    """Run each full-compute generation (a callable; one per prompt chunk) and gather per-cell statistics.
    The Wasserstein distance needs a sort of every output, so it is computed only when asked for."""
    similarities = tuple(similarities)
    for name in similarities:
        _check_similarity(name)
    layout = accel.layout_of(model)
    n = layout.n_cells
    gram = np.zeros((n, steps, steps))
    l1 = np.zeros((n, steps, steps))
    wass = np.zeros((n, steps, steps))
    count = np.zeros(n)
    peak = 0
    for generate in generations:
        features: dict[tuple[int, int], list[torch.Tensor]] = {}

        def observe(step, branch, cell, out):
            features.setdefault((cell, step), []).append(_flatten(out))

        plan = accel.Plan(cache=accel.CacheSchedule.full(layout, steps), reuse_text_kv=False)
        with accel.accelerate(model, plan, observer=observe), torch.no_grad():
            generate()
        peak = max(peak, sum(t.numel() * 4 for v in features.values() for t in v))
        for c in range(n):
            if any((c, t) not in features for t in range(steps)):
                raise PlanError(f"calibration saw cell {'.'.join(layout.cells[c])} at only some steps; "
                                f"the generation must run all {steps} steps.")
            x = torch.stack([torch.cat(features.pop((c, t))) for t in range(steps)]).double()  # (T, F)
            gram[c] += (x @ x.T).numpy()
            l1[c] += torch.stack([(x - x[i]).abs().sum(1) for i in range(steps)]).numpy()
            if "wasserstein" in similarities:
                xs = torch.sort(x, dim=1).values
                wass[c] += torch.stack([(xs - xs[i]).abs().sum(1) for i in range(steps)]).numpy()
            count[c] += x.shape[1]
    norms = np.sqrt(np.einsum("ctt->ct", gram))
    sq = np.einsum("ctt->ct", gram)
    l2sq = np.maximum(sq[:, :, None] + sq[:, None, :] - 2 * gram, 0)
    per = count[:, None, None]
    matrices = {"cosine": gram / np.maximum(norms[:, :, None] * norms[:, None, :], 1e-30),
                "l1": l1 / per, "l2": np.sqrt(l2sq), "mse": l2sq / per}
    if "wasserstein" in similarities:
        matrices["wasserstein"] = wass / per
    upper = np.triu_indices(steps, 1)
    error = np.array([matrices["l1"][c][upper].mean() if steps > 1 else 0.0 for c in range(n)])
    return CellStatistics(layout, steps, matrices, error, int(peak))


def _check_similarity(name: str) -> None:
    if name not in SIMILARITIES:
        raise PlanError(f"unknown similarity {name!r}; choose one of {SIMILARITIES}.")


def schedule_updates(S: np.ndarray, k: int, maximize: bool = True, force_final: bool = True) -> list[int]:
    """K update steps from a (T, T) similarity matrix; step 0 always updates, and step T-1 too unless
    force_final is False (then the K updates split all T steps into K segments)."""
    T = S.shape[0]
    least = 2 if force_final else 1
    if k < least and T > 1:
        raise PlanError(f"K must be at least {least} (the first{' and the final' if force_final else ''} step "
                        f"always update{'' if force_final else 's'}), got {k}.")
    if k >= T:
        return list(range(T))
    score = S if maximize else -S
    segments, m = (k - 1, T - 1) if force_final else (k, T)  # split steps 0..m-1; a forced T-1 stands alone
    cum = np.zeros((m, m + 1))
    cum[:, 1:] = np.cumsum(score[:m, :m], axis=1)
    diag = cum[np.arange(m), np.arange(m)]  # cost(a, b) = sum_{t=a..b} score[a, t] = cum[a, b + 1] - diag[a]
    dp = np.full((segments + 1, m), -np.inf)
    back = np.zeros((segments + 1, m), dtype=int)
    dp[1] = cum[0, 1:] - diag[0]
    for seg in range(2, segments + 1):
        for i in range(seg - 1, m):
            j = np.arange(seg - 2, i)  # previous segment ends at j, this one is [j+1, i]
            cand = dp[seg - 1, j] + cum[j + 1, i + 1] - diag[j + 1]
            best = int(np.argmax(cand))
            dp[seg, i], back[seg, i] = cand[best], j[best]
    starts, i = [], m - 1
    for seg in range(segments, 1, -1):
        j = back[seg, i]
        starts.append(j + 1)
        i = j
    return sorted(int(t) for t in [0, *starts, *([T - 1] if force_final else [])])


def bubbling_union(updates: list[set[int]], layout: Layout, error_score: np.ndarray, top_n: int) -> list[set[int]]:
    """The top-n cells by error score take the update steps of every FFN cell at the same or a deeper block."""
    block_of = [b for b, cells in enumerate(layout.block_cells) for _ in cells]
    ffn = [r in FFN_ROLES for r in layout.roles]
    out = [set(u) for u in updates]
    for u in np.argsort(-np.asarray(error_score), kind="stable")[:top_n]:
        for c in range(layout.n_cells):
            if ffn[c] and block_of[c] >= block_of[u]:
                out[u] |= updates[c]
    return out


def cell_groups(layout: Layout, granularity: str) -> list[list[int]]:
    """Cells that share one schedule: each cell (BAC), each block's cells, or every cell of the model."""
    if granularity == "cell":
        return [[c] for c in range(layout.n_cells)]
    if granularity == "block":
        return layout.block_cells
    if granularity == "model":
        return [list(range(layout.n_cells))]
    raise PlanError(f"unknown granularity {granularity!r}; choose one of {GRANULARITIES}.")


def step_weights(steps: int, step_weight: str) -> np.ndarray:
    """Per step t, how much the DP counts the cached output standing in for it."""
    if step_weight == "flat":
        return np.ones(steps)
    if step_weight == "ramp":  # an error at a late step reaches the image; an early one is partly denoised away
        return (np.arange(steps) + 1) / steps
    raise PlanError(f"unknown step weight {step_weight!r}; choose one of {STEP_WEIGHTS}.")


def bac_schedule(stats: CellStatistics, k: int, top_n: int = 5, similarity: str = "cosine",
                 granularity: str = "cell", force_final: bool = True, step_weight: str = "flat") -> accel.CacheSchedule:
    """The BAC plan for K updates. granularity 'block' or 'model' schedules a group of cells on the sum of their
    matrices (distances scaled by each cell's mean first, so no cell outweighs the rest by its size); step_weight
    'ramp' weighs the similarity of the cached output to step t by (t + 1) / T."""
    _check_similarity(similarity)
    weight = step_weights(stats.steps, step_weight)
    if similarity not in stats.matrices:
        raise PlanError(f"the calibration did not compute {similarity!r}; calibrate with similarities=[{similarity!r}].")
    groups = cell_groups(stats.layout, granularity)
    S = stats.matrices[similarity]
    if similarity != "cosine":
        S = S / np.maximum(S.reshape(len(S), -1).mean(1), 1e-30)[:, None, None]
    updates = [set() for _ in range(stats.layout.n_cells)]
    for cells in groups:
        steps = schedule_updates(S[cells].sum(0) * weight, k, maximize=similarity == "cosine", force_final=force_final)
        for c in cells:
            updates[c] = set(steps)
    if top_n:
        updates = bubbling_union(updates, stats.layout, stats.error_score, top_n)
    mask = np.zeros((stats.steps, stats.layout.n_cells), dtype=bool)
    for c, steps in enumerate(updates):
        mask[sorted(steps), c] = True
    return accel.CacheSchedule(stats.layout, mask)


def run_bac(chunks: list, sampler, out, ks: Iterable[int] = range(4, 13), top_n: int = 5, similarity: str = "cosine",
            model_name: str = "builtin:shapes", log=print, granularity: str = "cell", force_final: bool = True,
            step_weight: str = "flat"):
    """Calibrate on ``chunks`` (samplers over prompt chunks), schedule every K, evaluate the plans on ``sampler``
    (all calibration prompts) and write a front folder; BAC without the Bubbling Union and FORA are its baselines."""
    import time

    from accel.search.evaluator import PlanEvaluator
    from accel.search.front import FrontPoint, ParetoFront
    from accel.search.samplers import generate

    cell_groups(accel.layout_of(sampler.denoiser), granularity)  # bad options fail before any run
    step_weights(sampler.steps, step_weight)
    started = time.perf_counter()
    stats = calibrate(sampler.denoiser, [lambda s=s: generate(s) for s in chunks], sampler.steps, [similarity])
    plans = {k: bac_schedule(stats, k, top_n, similarity, granularity, force_final, step_weight) for k in ks}
    plain = {k: bac_schedule(stats, k, 0, similarity, granularity, force_final, step_weight) for k in ks}
    took = time.perf_counter() - started
    log(f"calibration + scheduling for K = {min(ks)}..{max(ks)}: {took:.1f}s; peak output memory "
        f"{stats.peak_feature_bytes / 2**20:.1f} MiB")
    evaluator = PlanEvaluator(sampler, share_prefixes=True, cache_dir=out)
    fora = {n: accel.CacheSchedule.every(stats.layout, sampler.steps, n) for n in range(2, 6)}
    masks = [s.mask for s in [*plans.values(), *plain.values(), *fora.values()]]
    metrics = evaluator.evaluate(masks)
    produced = {"method": "bac", "similarity": similarity, "top_n": top_n, "granularity": granularity,
                "force_final": force_final, "step_weight": step_weight, "seconds_calibration": round(took, 2),
                "peak_output_bytes": stats.peak_feature_bytes}
    points = [FrontPoint(accel.Plan(cache=s, model_name=model_name, produced_by={**produced, "k": k}), m, f"bac-k{k}")
              for (k, s), m in zip(plans.items(), metrics)]
    front = ParetoFront.from_evaluations(points, ["flop_ratio", "psnr"], model=model_name, steps=sampler.steps,
                                         produced_by=produced)
    rest = metrics[len(plans):]
    front.baselines = ([{"name": f"bac-k{k}-no-union", "family": "BAC without Bubbling Union", "metrics": m}
                        for k, m in zip(plain, rest[: len(plain)])]
                       + [{"name": f"fora-{n}", "family": "FORA every-n", "metrics": m}
                          for n, m in zip(fora, rest[len(plain):])])
    front.save(out)
    # the ablation as a front folder of its own, so the bench can put it beside the Bubbling Union plans
    no_union = [FrontPoint(accel.Plan(cache=s, model_name=model_name, produced_by={**produced, "top_n": 0, "k": k}), m,
                           f"bac-k{k}-no-union") for (k, s), m in zip(plain.items(), rest[: len(plain)])]
    ParetoFront(model=model_name, steps=sampler.steps, objectives=["flop_ratio", "psnr"], points=no_union,
                produced_by={**produced, "top_n": 0, "method": "bac-no-union"}).save(Path(out) / "no-union")
    return front, stats

