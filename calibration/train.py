"""Train the embedded shapes model (prompt encoder + PixArt denoiser) with rectified flow, then measure it.

    python -m accel.calibration.train --device cuda --minutes 7 --out runs/shapes-dit
    python -m accel.calibration.train --device cpu --minutes 60 --out runs/shapes-dit-cpu

--minutes is the whole run's wall time: rendering the scene pool, training, and the final evaluation (a reserve
is kept for it). Training data is a pool of procedural scenes rendered once on the device; every step draws a
random batch from it, fresh noise and a fresh noise level. EMA weights are written to --out every
--checkpoint-minutes (so a killed run still leaves a usable model) and at the end, in the layout load_pipeline
reads; copy --out over calibration/data/shapes-dit to ship them. The end evaluates the test prompts with the
attribute classifier at 20 steps and prints shape/colour/size/position/background accuracy.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from accel.calibration import dataset as ds
from accel.calibration.evaluate import evaluate
from accel.calibration.model import TEXT_ATTENTION, ShapesModelConfig, build_models, save_models


@dataclass
class TrainConfig:
    """The training recipe. Defaults per device are filled in by for_device."""

    model: ShapesModelConfig = field(default_factory=ShapesModelConfig)
    seed: int = 0
    batch: int = 512  # a tiny model needs a large batch to keep a big GPU busy
    lr: float = 1e-3  # AdamW peak; linear warm-up, then cosine decay to lr_final_frac over the run's progress
    lr_final_frac: float = 0.05
    warmup_steps: int = 200
    weight_decay: float = 0.0
    ema_decay: float = 0.999  # EMA of weights, warmed up as (1 + step) / (10 + step)
    p_uncond: float = 0.1  # condition dropout (prompt -> all padding) for classifier-free guidance
    logit_normal_mean: float = 0.0  # noise level sigma = sigmoid(N(mean, std)): most steps at mid noise
    logit_normal_std: float = 1.0
    p_two: float = 0.35  # share of two-object scenes
    pool: int = 524288  # scenes rendered once up front (stored in float16 on the device)
    max_steps: int = 0  # 0 = until the time budget; else stop here (a deterministic end point)
    minutes: float = 7.0
    eval_reserve_s: float = 45.0  # wall time kept for the final evaluation
    checkpoint_minutes: float = 1.0
    log_every: int = 100
    eval_prompts: int = 0  # test prompts evaluated at the end (0 = all)
    resume: str | None = None  # a saved model folder to start from (its weights; the optimizer starts afresh)
    text_attention: str | None = None  # with resume: switch the loaded encoder's attention (model.text_attention)

    @classmethod
    def for_device(cls, device: str, **overrides) -> "TrainConfig":
        if device == "cpu":
            base = dict(batch=64, pool=16384, log_every=20, eval_prompts=48, eval_reserve_s=40.0, warmup_steps=100)
        else:
            base = {}
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)


def _lr_factor(cfg: TrainConfig, step: int, progress: float) -> float:
    warm = min(1.0, (step + 1) / cfg.warmup_steps)
    cos = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return warm * (cfg.lr_final_frac + (1 - cfg.lr_final_frac) * cos)


def render_pool(cfg: TrainConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(images in [-1, 1] float16, token ids) of cfg.pool training scenes (held-out combinations excluded)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    scenes = ds.sample_scenes(cfg.pool, gen, p_two=cfg.p_two, held_out="exclude")
    tokens = ds.tokens_of(scenes).to(device)
    images = torch.empty(cfg.pool, 3, 32, 32, dtype=torch.float16, device=device)
    chunk = 8192 if device.type == "cuda" else 2048
    for i in range(0, cfg.pool, chunk):
        sub = ds.SceneBatch(**{k: v[i:i + chunk] for k, v in vars(scenes).items()})
        images[i:i + chunk] = (ds.render(sub, device) * 2 - 1).half()
    return images, tokens


def save_checkpoint(out: Path, cfg: TrainConfig, ema_tr, ema_te, extra: dict) -> None:
    """Write atomically: a kill during a save leaves the previous checkpoint intact."""
    mcfg = copy.deepcopy(cfg.model)
    mcfg.extra = extra
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_models(tmp, mcfg, ema_tr, ema_te)
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def train(cfg: TrainConfig, device: torch.device, out: Path) -> dict:
    t_start = time.time()
    deadline = t_start + cfg.minutes * 60 - cfg.eval_reserve_s
    torch.manual_seed(cfg.seed)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    pool_img, pool_tok = render_pool(cfg, device)
    print(f"rendered a pool of {cfg.pool} scenes on {device} in {time.time() - t_start:.1f}s", flush=True)

    if cfg.resume:  # continue a saved model: its architecture wins over the config's
        from accel.calibration.model import load_models

        cfg.model, transformer, text_encoder, _ = load_models(Path(cfg.resume))
        print(f"resuming from {cfg.resume} ({cfg.model.extra.get('steps', '?')} steps trained before)", flush=True)
        if cfg.text_attention and cfg.text_attention != text_encoder.attention:
            print(f"text encoder attention: {text_encoder.attention} -> {cfg.text_attention}", flush=True)
            text_encoder.set_attention(cfg.text_attention)
            cfg.model.text_attention = cfg.text_attention
    else:
        transformer, text_encoder = build_models(cfg.model)
    transformer.to(device).train()
    text_encoder.to(device).train()
    ema_tr, ema_te = copy.deepcopy(transformer).eval(), copy.deepcopy(text_encoder).eval()
    params = list(transformer.parameters()) + list(text_encoder.parameters())
    ema_params = list(ema_tr.parameters()) + list(ema_te.parameters())
    n_params = sum(p.numel() for p in transformer.parameters())
    print(f"transformer {n_params / 1e6:.2f}M parameters, text encoder "
          f"{sum(p.numel() for p in text_encoder.parameters()) / 1e3:.0f}k; batch {cfg.batch}", flush=True)
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay,
                            **({"fused": True} if cuda else {}))
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    added = {"resolution": None, "aspect_ratio": None}
    budget = max(deadline - time.time(), 1e-6)
    t_train, t_log, t_ckpt = time.time(), time.time(), time.time()
    step, loss_sum, loss_n = 0, torch.zeros((), device=device), 0
    command = " ".join(["python -m accel.calibration.train"] + sys.argv[1:])
    before = cfg.model.extra if cfg.resume else {}
    steps_before = before.get("steps_total", before.get("steps", 0))
    extra = {"device": str(device), "batch": cfg.batch, "command": command,
             "history": [*before.get("history", [before["command"]] if "command" in before else []), command]}
    try:
        while True:
            progress = (time.time() - t_train) / budget
            if cfg.max_steps:
                progress = max(progress, step / cfg.max_steps)
            if progress >= 1.0:
                break
            for group in opt.param_groups:
                group["lr"] = cfg.lr * _lr_factor(cfg, step, progress)
            idx = torch.randint(cfg.pool, (cfg.batch,), generator=gen, device=device)
            x0 = pool_img[idx].float()
            tok = pool_tok[idx]
            drop = torch.rand(cfg.batch, generator=gen, device=device) < cfg.p_uncond
            tok = torch.where(drop[:, None], torch.zeros_like(tok), tok)
            sigma = torch.sigmoid(cfg.logit_normal_mean + cfg.logit_normal_std
                                  * torch.randn(cfg.batch, generator=gen, device=device))
            eps = torch.randn(x0.shape, generator=gen, device=device)
            s4 = sigma[:, None, None, None]
            xt = (1 - s4) * x0 + s4 * eps
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                text = text_encoder(tok)
                v = transformer(hidden_states=xt, encoder_hidden_states=text, timestep=sigma * 1000,
                                added_cond_kwargs=added, return_dict=False)[0]
            loss = F.mse_loss(v.float(), eps - x0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            decay = min(cfg.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                torch._foreach_lerp_(ema_params, params, 1 - decay)
            step += 1
            loss_sum += loss.detach()
            loss_n += 1
            if step % cfg.log_every == 0:
                now = time.time()
                rate = cfg.log_every / (now - t_log)
                left = max(deadline - now, 0)
                print(f"step {step} loss {loss_sum.item() / loss_n:.4f} {rate:.1f} it/s {rate * cfg.batch:.0f} img/s "
                      f"lr {opt.param_groups[0]['lr']:.2e} elapsed {now - t_start:.0f}s train-left {left:.0f}s",
                      flush=True)
                t_log, loss_sum, loss_n = now, torch.zeros((), device=device), 0
            if time.time() - t_ckpt > cfg.checkpoint_minutes * 60:
                save_checkpoint(out, cfg, ema_tr, ema_te, {**extra, "steps": step, "steps_total": steps_before + step,
                                                             "final": False})
                t_ckpt = time.time()
    except KeyboardInterrupt:
        print("interrupted: saving the EMA weights", flush=True)
    extra.update(steps=step, steps_total=steps_before + step, final=True,
                 train_seconds=round(time.time() - t_train), images_seen=step * cfg.batch)
    save_checkpoint(out, cfg, ema_tr, ema_te, extra)
    print(f"trained {step} steps ({step * cfg.batch} images) in {time.time() - t_train:.0f}s; saved {out}", flush=True)
    return extra


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Train the embedded shapes model (see module docstring).")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--minutes", type=float, default=7.0, help="whole-run wall-time budget")
    p.add_argument("--out", type=Path, default=Path("runs/shapes-dit"))
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--pool", type=int)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--eval-prompts", type=int, help="test prompts to evaluate at the end (0 = all)")
    p.add_argument("--no-eval", action="store_true")
    p.add_argument("--patch-size", type=int, help="denoiser architecture overrides (default: ShapesModelConfig)")
    p.add_argument("--layers", type=int)
    p.add_argument("--heads", type=int)
    p.add_argument("--head-dim", type=int)
    p.add_argument("--text-attention", choices=TEXT_ATTENTION,
                   help="prompt encoder attention (default: ShapesModelConfig; with --resume: switch the loaded one)")
    p.add_argument("--p-two", type=float, help="share of two-object scenes in the pool (default 0.35)")
    p.add_argument("--resume", help="start from a saved model folder (e.g. the shipped one) instead of scratch")
    a = p.parse_args(argv)
    if a.p_two is not None and not 0.0 <= a.p_two <= 1.0:
        p.error(f"--p-two is a share of the pool, between 0 and 1; got {a.p_two}")
    device = torch.device(a.device)
    arch = {k: v for k, v in dict(patch_size=a.patch_size, num_layers=a.layers, num_heads=a.heads,
                                  head_dim=a.head_dim, text_attention=a.text_attention).items() if v is not None}
    cfg = TrainConfig.for_device(device.type, minutes=a.minutes, batch=a.batch, lr=a.lr, pool=a.pool,
                                 max_steps=a.max_steps, seed=a.seed, eval_prompts=a.eval_prompts, p_two=a.p_two,
                                 model=ShapesModelConfig(**arch), resume=a.resume, text_attention=a.text_attention)
    if device.type == "cpu":
        torch.set_num_threads(max(torch.get_num_threads(), 1))
    print("config: " + json.dumps(asdict(cfg)), flush=True)
    extra = train(cfg, device, a.out)
    if a.no_eval:
        return
    scales = [1.0, 2.0, 3.0, 4.5] if device.type == "cuda" else [cfg.model.guidance_scale]
    res = evaluate(a.out, device, cfg.eval_prompts, scales)
    # Record what was measured with the weights, and make the best scale the pipeline's default.
    index = a.out / "model_index.json"
    mcfg = json.loads(index.read_text())
    mcfg["guidance_scale"] = res["guidance_scale"]
    mcfg["extra"] = {**extra, "eval": res}
    index.write_text(json.dumps(mcfg, indent=1))
    best = res["by_scale"][str(res["guidance_scale"])]
    print(f"FINAL cfg {res['guidance_scale']} 20 steps on {res['n_prompts']} test prompts: "
          + " ".join(f"{k} {v:.3f}" for k, v in best.items()), flush=True)


if __name__ == "__main__":
    main()
