"""Train the attribute classifier of metrics.py on procedural scenes and write the FID reference statistic.

    python -m accel.calibration.train_classifier [--out DIR] [--images 48000] [--epochs 6] [--device cuda]
    python -m accel.calibration.train_classifier --reference-only   # only the FID reference statistic

It sees every attribute combination (the judge must know the held-out ones too), with noise and blur added so
it also reads imperfect generated images. Accuracy is measured on held-out real images rendered from a seed
the training never uses. About 15 minutes on a 2-core CPU, under a minute on a GPU.
"""

from __future__ import annotations

import argparse
import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from accel.calibration import dataset as ds
from accel.calibration.metrics import DATA_DIR, AttributeClassifier, AttributeNet, feature_stats, scene_targets


@dataclass
class ClassifierTrainConfig:
    """How the shipped classifier is trained."""

    images: int = 48000  # pre-rendered training scenes (all combinations, 40% two-object)
    epochs: int = 6
    batch: int = 256
    lr: float = 2e-3
    noise_max: float = 0.08  # per-image Gaussian noise std drawn from U(0, noise_max)
    jitter_px: float = 1.0  # object centres move this far (augmentation; the model's data set has none)
    seed: int = 7
    val_images: int = 4096  # held-out real images for accuracy and the FID reference statistic
    val_seed: int = 99991


def augment(x: torch.Tensor, gen: torch.Generator, noise_max: float) -> torch.Tensor:
    n = x.shape[0]
    blur = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    w = torch.rand(n, 1, 1, 1, generator=gen, device=x.device)
    w = w * (torch.rand(n, 1, 1, 1, generator=gen, device=x.device) < 0.3)
    x = x * (1 - w) + blur * w
    sd = torch.rand(n, 1, 1, 1, generator=gen, device=x.device) * noise_max
    return (x + sd * torch.randn(x.shape, generator=gen, device=x.device)).clamp(0, 1)


def render_chunked(batch: ds.SceneBatch, device="cpu", chunk: int = 2048) -> torch.Tensor:
    parts = []
    for i in range(0, len(batch), chunk):
        sub = ds.SceneBatch(**{k: v[i:i + chunk] for k, v in vars(batch).items()})
        parts.append(ds.render(sub, device))
    return torch.cat(parts)


def evaluate(clf: AttributeClassifier, images: torch.Tensor, batch: ds.SceneBatch) -> dict[str, float]:
    return clf.attribute_accuracy(images, batch.prompts())


def train(cfg: ClassifierTrainConfig, out: Path, device: str = "cpu") -> dict[str, float]:
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.time()
    scenes = ds.sample_scenes(cfg.images, gen, p_two=0.4, held_out="include", jitter_px=cfg.jitter_px)
    images = render_chunked(scenes, device)
    targets = {k: v.to(device) for k, v in scene_targets(scenes).items()}
    gen = torch.Generator(device).manual_seed(cfg.seed)
    val_scenes = held_out_scenes(cfg, cfg.jitter_px)
    val_images = render_chunked(val_scenes)
    print(f"rendered {cfg.images} training + {cfg.val_images} held-out images in {time.time() - t0:.0f}s", flush=True)

    net = AttributeNet().to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    steps = cfg.epochs * (cfg.images // cfg.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=steps, pct_start=0.1)
    step = 0
    for epoch in range(cfg.epochs):
        net.train()
        order = torch.randperm(cfg.images, generator=gen, device=device)
        for i in range(0, cfg.images - cfg.batch + 1, cfg.batch):
            idx = order[i:i + cfg.batch]
            logits = net(augment(images[idx], gen, cfg.noise_max))
            loss = F.cross_entropy(logits["background"], targets["background"][idx])
            for name in ("shape", "colour", "size"):
                loss = loss + F.cross_entropy(logits[name].flatten(0, 1), targets[name][idx].flatten(),
                                              ignore_index=-100)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 100 == 0:
                print(f"epoch {epoch} step {step}/{steps} loss {loss.item():.4f} ({time.time() - t0:.0f}s)", flush=True)
        acc = evaluate(AttributeClassifier(copy.deepcopy(net)), val_images, val_scenes)
        print(f"epoch {epoch}: held-out real images " + " ".join(f"{k} {v:.4f}" for k, v in acc.items()), flush=True)

    clf = AttributeClassifier(net, info={"train": asdict(cfg), "device": str(device), "held_out_accuracy": acc,
                                         "command": "python -m accel.calibration.train_classifier"})
    clf.save(out / "classifier")
    write_fid_reference(clf, out, cfg)
    print(f"saved {out / 'classifier'} and {out / 'fid_reference.safetensors'} ({time.time() - t0:.0f}s)")
    return acc


def held_out_scenes(cfg: ClassifierTrainConfig, jitter_px: float) -> ds.SceneBatch:
    """The held-out real scenes (a seed training never uses; every combination)."""
    gen = torch.Generator().manual_seed(cfg.val_seed)
    return ds.sample_scenes(cfg.val_images, gen, held_out="include", jitter_px=jitter_px)


def write_fid_reference(clf: AttributeClassifier, out: Path, cfg: ClassifierTrainConfig) -> None:
    """The FID reference: classifier features of held-out real images drawn like the model's training data
    (the data set's own jitter, not the classifier's augmentation)."""
    from safetensors.torch import save_file

    scenes = held_out_scenes(cfg, ds.JITTER_PX)
    stats = feature_stats(clf.features(render_chunked(scenes)))
    save_file({k: v.float().contiguous() for k, v in stats.items()}, str(out / "fid_reference.safetensors"))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DATA_DIR)
    p.add_argument("--images", type=int, default=ClassifierTrainConfig.images)
    p.add_argument("--epochs", type=int, default=ClassifierTrainConfig.epochs)
    p.add_argument("--device", default="cpu")
    p.add_argument("--reference-only", action="store_true",
                   help="keep the classifier in --out and rewrite only the FID reference statistic")
    a = p.parse_args(argv)
    cfg = ClassifierTrainConfig(images=a.images, epochs=a.epochs)
    if a.reference_only:
        write_fid_reference(AttributeClassifier.load(a.out / "classifier"), a.out, cfg)
        print(f"saved {a.out / 'fid_reference.safetensors'}")
        return
    train(cfg, a.out, a.device)


if __name__ == "__main__":
    main()
