"""Quality metrics for any batch of images (float N x 3 x H x W in [0, 1]); all deterministic.

- psnr, ssim: per-image agreement with a reference generation (e.g. the full-compute images of the same prompts).
- AttributeClassifier: a small CNN trained on procedural scenes (a GenEval analogue). It reads a scene slot by
  slot: for each of the five positions whether an object is there and its shape, colour and size, plus the
  background. attribute_accuracy counts, for each object a prompt names, its shape/colour/size at its own
  position and whether its position is occupied ("position"); "background" counts once per image; "prompt" is
  whole-prompt accuracy: every named attribute right AND no object where the prompt names none.
- frechet_distance: Frechet distance between Gaussian fits of the classifier's 128-d features (an FID analogue),
  against a shipped statistic of held-out real procedural images or against another image batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from accel.calibration import grammar as g

DATA_DIR = Path(__file__).parent / "data"
CLASSIFIER_DIR = DATA_DIR / "classifier"
N_SLOTS = len(g.POSITIONS)
SLOT_HEADS = (("shape", len(g.SHAPES) + 1), ("colour", len(g.COLOURS)), ("size", len(g.SIZES)))  # shape 0 = empty
FEATURE_DIM = 128


# --- PSNR / SSIM --------------------------------------------------------------------------------------------


def _check_pair(images: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if images.shape != reference.shape or images.dim() != 4:
        raise ValueError(f"images {tuple(images.shape)} and reference {tuple(reference.shape)} must both be NxCxHxW")
    return images.detach().double().cpu(), reference.detach().double().cpu()


def psnr(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image (peak 1.0); +inf where an image equals its reference."""
    x, y = _check_pair(images, reference)
    mse = ((x - y) ** 2).flatten(1).mean(1)
    return (10 * torch.log10(1.0 / mse)).float()  # mse == 0 gives +inf


def _gaussian_window(size: int = 7, sigma: float = 1.5) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-(r**2) / (2 * sigma**2))
    w = w / w.sum()
    return w[:, None] * w[None, :]


def ssim(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004; 7x7 Gaussian window, sigma 1.5, as 32x32 images need a
    small window), averaged over channels and valid window positions. 1.0 for identical images."""
    x, y = _check_pair(images, reference)
    c = x.shape[1]
    w = _gaussian_window().expand(c, 1, 7, 7).contiguous()
    mu_x, mu_y = F.conv2d(x, w, groups=c), F.conv2d(y, w, groups=c)
    sxx = F.conv2d(x * x, w, groups=c) - mu_x**2
    syy = F.conv2d(y * y, w, groups=c) - mu_y**2
    sxy = F.conv2d(x * y, w, groups=c) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1).float()


# --- attribute classifier -----------------------------------------------------------------------------------


class AttributeNet(nn.Module):
    """Three conv stages (32 -> 16 -> 8 pixels), a 128-d feature layer, and linear heads per slot + background.
    It flattens rather than pools the last map, so it knows where things are."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(3, 24, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
            nn.Conv2d(24, 48, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
            nn.Conv2d(48, 64, 3, padding=1), nn.GELU(),
        )
        self.feature = nn.Linear(64 * 8 * 8, FEATURE_DIM)
        self.background = nn.Linear(FEATURE_DIM, len(g.BACKGROUNDS))
        self.slots = nn.Linear(FEATURE_DIM, N_SLOTS * sum(k for _, k in SLOT_HEADS))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.feature(self.conv(images * 2 - 1).flatten(1))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits: 'background' (N, 3); per slot head (N, 5 slots, classes)."""
        h = F.gelu(self.features(images))
        out = {"background": self.background(h)}
        slots = self.slots(h).view(h.shape[0], N_SLOTS, -1)
        start = 0
        for name, k in SLOT_HEADS:
            out[name] = slots[..., start:start + k]
            start += k
        return out


def scene_targets(batch) -> dict[str, torch.Tensor]:
    """Classifier targets of a dataset.SceneBatch: background (N,), per slot shape (0 empty, else 1 + shape),
    colour and size (-100 where the slot is empty, ignored by cross_entropy)."""
    n = len(batch)
    t = {"background": batch.background.clone(), "shape": torch.zeros(n, N_SLOTS, dtype=torch.long)}
    t["colour"] = torch.full((n, N_SLOTS), -100, dtype=torch.long)
    t["size"] = torch.full((n, N_SLOTS), -100, dtype=torch.long)
    rows = torch.arange(n)
    for k in range(2):
        r, p = rows[batch.present[:, k]], batch.position[batch.present[:, k], k]
        t["shape"][r, p] = batch.shape[batch.present[:, k], k] + 1
        t["colour"][r, p] = batch.colour[batch.present[:, k], k]
        t["size"][r, p] = batch.size[batch.present[:, k], k]
    return t


class AttributeClassifier:
    """The shipped attribute classifier (CPU, float32, eval mode). Use AttributeClassifier.load()."""

    def __init__(self, net: AttributeNet, info: dict | None = None):
        self.net = net.eval().float().cpu()
        self.info = info or {}

    @classmethod
    def load(cls, path: str | Path = CLASSIFIER_DIR) -> "AttributeClassifier":
        from safetensors.torch import load_file

        path = Path(path)
        net = AttributeNet()
        net.load_state_dict(load_file(path / "model.safetensors"))
        info = json.loads((path / "info.json").read_text()) if (path / "info.json").exists() else {}
        return cls(net, info)

    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, path / "model.safetensors")
        (path / "info.json").write_text(json.dumps(self.info, indent=1))

    @staticmethod
    def _prepare(images: torch.Tensor) -> torch.Tensor:
        x = images.detach().float().cpu()
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"images must be N x 3 x H x W, got {tuple(x.shape)}")
        if x.shape[-2:] != (32, 32):
            x = F.interpolate(x, size=(32, 32), mode="area")
        return x.clamp(0, 1)

    @torch.no_grad()
    def _run(self, images: torch.Tensor, fn, batch: int = 512):
        x = self._prepare(images)
        outs = [fn(x[i:i + batch]) for i in range(0, x.shape[0], batch)]
        return outs

    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """'background' (N,); per slot (N, 5): 'shape' (-1 = empty, else index into SHAPES), 'colour', 'size'
        (meaningful where a shape is), 'occupied' (bool). Slot order is grammar.POSITIONS."""
        outs = self._run(images, self.net)
        logits = {k: torch.cat([o[k] for o in outs]) for k in outs[0]} if outs else {}
        if not logits:
            return {"background": torch.zeros(0, dtype=torch.long)}
        pred = {k: v.argmax(-1) for k, v in logits.items()}
        pred["shape"] = pred["shape"] - 1
        pred["occupied"] = pred["shape"] >= 0
        return pred

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The 128-d features (N, 128) float64, used by frechet_distance."""
        outs = self._run(images, self.net.features)
        return torch.cat(outs).double() if outs else torch.zeros(0, FEATURE_DIM, dtype=torch.float64)

    def attribute_accuracy(self, images: torch.Tensor, prompts: list[str]) -> dict[str, float]:
        """Accuracies in [0, 1]: shape, colour, size, position (per named object), background (per image),
        prompt (whole prompt right, nothing extra drawn). Prompts must follow the grammar."""
        if len(prompts) != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {len(prompts)} prompts")
        scenes = [g.parse_prompt(p) for p in prompts]
        pred = self.predict(images)
        hits = {a: [] for a in g.ATTRIBUTES}
        whole = []
        for i, s in enumerate(scenes):
            ok_all = True
            for o in s.objects:
                slot = o.position
                checks = {
                    "shape": int(pred["shape"][i, slot]) == o.shape,
                    "colour": bool(pred["occupied"][i, slot]) and int(pred["colour"][i, slot]) == o.colour,
                    "size": bool(pred["occupied"][i, slot]) and int(pred["size"][i, slot]) == o.size,
                    "position": bool(pred["occupied"][i, slot]),
                }
                for a, ok in checks.items():
                    hits[a].append(ok)
                    ok_all &= ok
            bg_ok = int(pred["background"][i]) == s.background
            hits["background"].append(bg_ok)
            named = {o.position for o in s.objects}
            extra = any(bool(pred["occupied"][i, k]) for k in range(N_SLOTS) if k not in named)
            whole.append(ok_all and bg_ok and not extra)
        acc = {a: sum(v) / max(len(v), 1) for a, v in hits.items()}
        acc["prompt"] = sum(whole) / max(len(whole), 1)
        return acc


# --- Frechet distance ---------------------------------------------------------------------------------------


def feature_stats(features: torch.Tensor) -> dict[str, torch.Tensor]:
    f = features.double()
    mu = f.mean(0)
    d = f - mu
    return {"mu": mu, "sigma": d.T @ d / max(f.shape[0] - 1, 1)}


def load_reference_stats(path: str | Path = DATA_DIR / "fid_reference.safetensors") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {k: v.double() for k, v in load_file(str(path)).items()}


def _sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh((a + a.T) / 2)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def frechet_distance(images: torch.Tensor, reference=None, classifier: AttributeClassifier | None = None) -> float:
    """Frechet distance between the classifier features of `images` and `reference`: an image batch, a dict of
    feature statistics {'mu', 'sigma'}, or None for the shipped statistic of held-out real procedural images."""
    clf = classifier or AttributeClassifier.load()
    stats = feature_stats(clf.features(images))
    if reference is None:
        ref = load_reference_stats()
    elif isinstance(reference, dict):
        ref = {k: torch.as_tensor(v).double() for k, v in reference.items()}
    else:
        ref = feature_stats(clf.features(reference))
    mu1, s1, mu2, s2 = stats["mu"], stats["sigma"], ref["mu"], ref["sigma"]
    # tr(sqrt(s1 s2)) computed symmetrically as tr(sqrt(sqrt(s1) s2 sqrt(s1))): stable and deterministic.
    r1 = _sqrtm_psd(s1)
    m = r1 @ s2 @ r1
    covmean_trace = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    return float(((mu1 - mu2) ** 2).sum() + torch.trace(s1) + torch.trace(s2) - 2 * covmean_trace)
