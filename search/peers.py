"""The systems users would otherwise pick, as bench `Method`s: diffusers' cache hooks and cache-dit's DBCache.

Each peer runs through its package's public API on the pipeline's denoiser, with a small sweep of its main knob
from nearly lossless to aggressive. ``apply(pipe)`` is a context manager: it installs the peer, runs every denoiser
call inside the cache context the peer needs, resets the peer's state at the start of each generation (the first
denoiser call after ``scheduler.set_timesteps``, when the scheduler's step index is still None), and on exit removes
what it installed so that the model is exactly as before (no hooks, no instance ``forward`` left behind).

FLOPs of dynamic peers differ per generation: the bench counts them with torch's FLOP counter around the same
generation it measures quality on (search/bench.py).
"""

from __future__ import annotations

import ast
import contextlib
import io
from dataclasses import dataclass
from typing import Callable

import torch

from accel.search.bench import Method

INSTALL_HINT = "pip install accel[peers]"
PEERS = ("fbcache", "pab", "fastercache", "taylorseer", "magcache", "dbcache", "dbcache-taylorseer")


class PeerUnavailable(Exception):
    """A peer that cannot run here (package missing, model unsupported); the message says why in one line."""


# ---- running a peer for whole generations ---------------------------------------------------------------------
@dataclass
class _Clock:
    """Where the denoising loop is, seen from the denoiser's calls."""

    step: int = 0
    timestep: float = 1000.0


def _new_generation(pipe) -> bool:
    return getattr(pipe.scheduler, "step_index", None) is None


@contextlib.contextmanager
def _around_calls(pipe, clock: _Clock, before: Callable[[_Clock, bool], None], after: Callable[[], None] | None = None):
    """Call ``before(clock, new_generation)`` ahead of every denoiser call and ``after()`` once it returns."""

    def pre(module, args, kwargs):
        new = _new_generation(pipe)
        clock.step = 0 if new else clock.step + 1
        t = kwargs.get("timestep", args[2] if len(args) > 2 else None)
        if t is not None:
            clock.timestep = float(t.flatten()[0]) if torch.is_tensor(t) else float(t)
        before(clock, new)

    handles = [pipe.transformer.register_forward_pre_hook(pre, with_kwargs=True)]
    if after is not None:
        handles.append(pipe.transformer.register_forward_hook(lambda *_: after(), always_call=True))
    try:
        yield clock
    finally:
        for h in handles:
            h.remove()


def _snapshot(model: torch.nn.Module) -> dict:
    """Which modules carry an instance ``forward`` or a diffusers hook registry, and its hooks, before a peer."""
    return {name: ("forward" in vars(m), list(getattr(m, "_diffusers_hook").hooks) if hasattr(m, "_diffusers_hook")
                   else None) for name, m in model.named_modules()}


def _restore(model: torch.nn.Module, before: dict) -> None:
    """Remove the diffusers hooks added since ``before`` and whatever the registries leave behind."""
    for name, m in model.named_modules():
        had_forward, had_hooks = before.get(name, (False, None))
        registry = getattr(m, "_diffusers_hook", None)
        if registry is not None:
            for hook in [h for h in reversed(registry._hook_order) if h not in (had_hooks or [])]:
                registry.remove_hook(hook, recurse=False)
            if had_hooks is None:
                del m._diffusers_hook
        if not had_forward and "forward" in vars(m):  # remove_hook leaves the original as an instance attribute
            del m.forward


def _diffusers_peer(apply_fn: Callable, make_config: Callable[[_Clock], object]):
    """apply(pipe) for a diffusers hook: ``apply_fn(transformer, config)``, every call inside ``cache_context``."""
    from diffusers.hooks import HookRegistry
    from diffusers.models.cache_utils import CacheMixin

    @contextlib.contextmanager
    def apply(pipe):
        model, clock, stack = pipe.transformer, _Clock(), contextlib.ExitStack()
        config = make_config(clock)  # before anything is installed: it may run the model (MagCache calibration)
        before = _snapshot(model)
        try:
            with _quiet():  # FasterCache warns that it is experimental on every install
                apply_fn(model, config)
            registry = HookRegistry.check_if_exists_or_initialize(model)
            registry.invalidate_child_registries_cache()

            def before_call(c: _Clock, new: bool):
                if new:  # a new generation: no state may leak from the last one
                    registry.reset_stateful_hooks()
                # PixArt lacks CacheMixin; its cache_context works on any module that holds the hooks
                stack.enter_context(CacheMixin.cache_context(model, "cond_uncond", step_index=c.step,
                                                             timestep=c.timestep))

            with _around_calls(pipe, clock, before_call, stack.close):
                yield
        finally:
            stack.close()
            _restore(model, before)
    return apply



def _method(name: str, family: str, apply: Callable) -> Method:
    return Method(name, family, apply=apply)


# ---- diffusers hooks ------------------------------------------------------------------------------------------
def _hooks():
    try:
        import diffusers.hooks as h
    except ImportError as e:  # pragma: no cover - diffusers is a core dependency
        raise PeerUnavailable(f"diffusers hooks unavailable ({e})") from e
    return h


def fbcache(pipe, steps: int) -> list[Method]:
    h = _hooks()
    return [_method(f"FBCache t={t:g}", "diffusers FirstBlockCache",
                    _diffusers_peer(h.apply_first_block_cache, lambda c, t=t: h.FirstBlockCacheConfig(threshold=t)))
            for t in (0.08, 0.12, 0.2, 0.3)]


def pab(pipe, steps: int) -> list[Method]:
    h = _hooks()
    sweep = [(2, None, (100, 800)), (3, None, (100, 800)), (4, None, (50, 950)), (4, 4, (50, 950))]

    def config(n, cross, span):
        return lambda c: h.PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=n, spatial_attention_timestep_skip_range=span,
            cross_attention_block_skip_range=cross, cross_attention_timestep_skip_range=span,
            current_timestep_callback=lambda: c.timestep)
    return [_method(f"PAB self-{n}" + (f" cross-{x}" if x else "") + f" t{s[0]}-{s[1]}", "diffusers PAB",
                    _diffusers_peer(h.apply_pyramid_attention_broadcast, config(n, x, s))) for n, x, s in sweep]


def fastercache(pipe, steps: int) -> list[Method]:
    h = _hooks()
    if not _batched_cfg(pipe):
        raise PeerUnavailable("FasterCache needs classifier-free guidance batched as [uncond; cond]")
    sweep = [(2, 2, (-1, 400)), (2, 3, (-1, 681)), (3, 4, (-1, 681)), (3, 5, (-1, 900))]

    def config(attn, uncond, span):
        return lambda c: h.FasterCacheConfig(
            spatial_attention_block_skip_range=attn, spatial_attention_timestep_skip_range=span,
            unconditional_batch_skip_range=uncond, unconditional_batch_timestep_skip_range=span,
            attention_weight_callback=lambda _: 0.5, tensor_format="BCHW", current_timestep_callback=lambda: c.timestep)
    return [_method(f"FasterCache attn-{a} uncond-{u} t<{s[1]}", "diffusers FasterCache",
                    _diffusers_peer(h.apply_faster_cache, config(a, u, s))) for a, u, s in sweep]


def taylorseer(pipe, steps: int) -> list[Method]:
    h = _hooks()
    warmup = max(1, round(0.15 * steps))  # the default 3 of 20-50 steps, scaled to shorter runs
    sweep = [(2, 1), (3, 1), (4, 2), (6, 2)]
    # The default patterns fullmatch modules named "...attn" (FLUX); PixArt's blocks hold attn1, attn2 and ff, the
    # branches TaylorSeer forecasts in its paper.
    branches = [r"(transformer_blocks|blocks)\.\d+\.(attn1|attn2|ff)"]
    return [_method(f"TaylorSeer every-{n} order-{o}", "diffusers TaylorSeer", _diffusers_peer(
        h.apply_taylorseer_cache, lambda c, n=n, o=o: h.TaylorSeerCacheConfig(
            cache_interval=n, max_order=o, disable_cache_before_step=warmup, taylor_factors_dtype=torch.float32,
            cache_identifiers=branches))) for n, o in sweep]


def magcache_ratios(pipe, steps: int, prompts: list[str], seed: int = 0) -> list[float]:
    """MagCache's per-step magnitude ratios for a model without published ones: its calibration mode on one
    generation, reading the ratios it prints (as its docs instruct)."""
    h = _hooks()
    apply = _diffusers_peer(h.apply_mag_cache, lambda c: h.MagCacheConfig(calibrate=True, num_inference_steps=steps))
    out = io.StringIO()
    with apply(pipe), contextlib.redirect_stdout(out):
        pipe(prompts, num_inference_steps=steps, seed=seed, output_type="pt")
    lines = [ln for ln in out.getvalue().splitlines() if ln.startswith("[") and ln.endswith("]")]
    if not lines:
        raise PeerUnavailable("MagCache calibration printed no ratios on this model")
    return [float(r) for r in ast.literal_eval(lines[-1])]


def magcache(pipe, steps: int, calibration_prompts: list[str] | None = None) -> list[Method]:
    h = _hooks()
    ratios: list[float] = []

    def config(threshold):
        def make(c):
            if not ratios:  # calibrated once, on first use, on calibration prompts (never the bench's)
                ratios.extend(magcache_ratios(pipe, steps, calibration_prompts or _calibration_prompts()))
            return h.MagCacheConfig(threshold=threshold, num_inference_steps=steps, mag_ratios=list(ratios))
        return make
    return [_method(f"MagCache t={t:g}", "diffusers MagCache", _diffusers_peer(h.apply_mag_cache, config(t)))
            for t in (0.02, 0.06, 0.12, 0.24)]


def _calibration_prompts() -> list[str]:
    from accel.calibration import load_prompts

    return load_prompts("calibration")[:4]


def _batched_cfg(pipe) -> bool:
    return getattr(getattr(pipe, "config", None), "guidance_scale", 1.0) > 1


# ---- cache-dit ------------------------------------------------------------------------------------------------
def _cache_dit():
    try:
        import cache_dit
    except ImportError as e:
        raise PeerUnavailable(f"cache-dit is not installed ({INSTALL_HINT})") from e
    return cache_dit


def _dbcache_peer(make: Callable[[], dict]):
    """apply(pipe) for cache-dit on the denoiser alone: enable_cache on a BlockAdapter over its blocks, a fresh
    context (refresh_context) at the start of each generation, disable_cache on exit."""
    cd = _cache_dit()

    @contextlib.contextmanager
    def apply(pipe):
        if not hasattr(pipe.transformer, "transformer_blocks"):
            raise PeerUnavailable(f"no transformer_blocks on {type(pipe.transformer).__name__} for DBCache")
        model = pipe.transformer
        before = _snapshot(model)
        with _quiet():
            adapter = cd.BlockAdapter(transformer=model, blocks=model.transformer_blocks,
                                      forward_pattern=cd.ForwardPattern.Pattern_3)
            cd.enable_cache(adapter, **make())

        def before_call(c: _Clock, new: bool):
            if new:
                with _quiet():
                    cd.refresh_context(model, num_inference_steps=len(pipe.scheduler.timesteps), verbose=False)
        try:
            with _around_calls(pipe, _Clock(), before_call):
                yield
        finally:
            with _quiet():
                cd.disable_cache(adapter)
            _restore(model, before)
    return apply


@contextlib.contextmanager
def _quiet():
    """The peers log a few lines per install, refresh and removal; the bench prints one line per method instead."""
    import logging

    loggers = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)
               if n.split(".")[0] in ("CACHE_DIT", "cache_dit", "diffusers")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def dbcache(pipe, steps: int, taylorseer: bool = False) -> list[Method]:
    cd = _cache_dit()
    warmup = max(1, round(0.15 * steps))
    family = "cache-dit DBCache" + (" + TaylorSeer" if taylorseer else "")
    sweep = [0.08, 0.12, 0.2, 0.32]

    def make(r):  # F1B0: the first block decides (cache-dit's F8B0 default would compute all 8 blocks here)
        return lambda: dict(cache_config=cd.DBCacheConfig(
            Fn_compute_blocks=1, Bn_compute_blocks=0, residual_diff_threshold=r, max_warmup_steps=warmup,
            enable_separate_cfg=False, num_inference_steps=steps),
            calibrator_config=cd.TaylorSeerCalibratorConfig(taylorseer_order=1) if taylorseer else None)
    return [_method(f"DBCache F1B0 r={r:g}" + (" +TS" if taylorseer else ""), family, _dbcache_peer(make(r)))
            for r in sweep]


REGISTRY: dict[str, Callable] = {
    "fbcache": fbcache, "pab": pab, "fastercache": fastercache, "taylorseer": taylorseer, "magcache": magcache,
    "dbcache": dbcache, "dbcache-taylorseer": lambda pipe, steps: dbcache(pipe, steps, taylorseer=True),
}


def probe(pipe, method: Method, steps: int, prompts: list[str]) -> None:
    """Install, run one short generation, remove: a peer that fails here would fail mid-bench."""
    with method.apply(pipe):
        pipe(prompts, num_inference_steps=steps, seed=0, output_type="pt")


def peer_methods(pipe, steps: int, names: list[str] | None = None, log=print,
                 probe_prompts: list[str] | None = None) -> list[Method]:
    """The sweeps of the named peers (default: all). A peer that cannot run on this model is skipped with one
    line saying why; each is probed with one generation of one prompt first (``probe_prompts=[]``: no probe)."""
    probe_prompts = _calibration_prompts()[:1] if probe_prompts is None else probe_prompts
    methods = []
    for name in names or PEERS:
        if name not in REGISTRY:
            raise ValueError(f"unknown peer {name!r}; known: {', '.join(PEERS)}")
        try:
            sweep = REGISTRY[name](pipe, steps)
            if probe_prompts:
                probe(pipe, sweep[-1], steps, probe_prompts)
        except PeerUnavailable as e:
            log(f"skipping {name}: {e}")
            continue
        except Exception as e:  # a peer that does not support this model: say so, keep the bench going
            log(f"skipping {name}: it does not run on {type(pipe.transformer).__name__} "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
            continue
        methods += sweep
    return methods
