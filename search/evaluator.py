"""Measured quality and exact cost of cache plans on calibration prompts, with nothing computed twice:

- the full-compute reference is generated once per (model, prompts, seed, steps) and kept beside the store;
- a plan already in the study store is answered from it, never re-run;
- plans evaluated together share the denoising steps their masks have in common (search/rollout.py).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

import accel
from accel.cost import CellCosts, measure
from accel.search.rollout import Rollout
from accel.search.store import StudyStore

QUALITY_METRICS = ("psnr", "ssim", "acc_prompt", "acc_shape", "frechet")


class PlanEvaluator:
    def __init__(self, sampler, reuse_text_kv: bool = True, share_prefixes: bool = True,
                 cache_dir: str | Path | None = None) -> None:
        self.sampler = sampler
        self.rollout = Rollout(sampler)
        self.layout, self.steps, self.prompts = self.rollout.layout, sampler.steps, list(sampler.prompts)
        self.reuse_text_kv, self.share_prefixes = reuse_text_kv, share_prefixes
        self.costs: CellCosts = measure(sampler.denoiser, **sampler.cost_inputs())
        self.reference = self._reference(cache_dir)
        self.classifier = _classifier_for(self.prompts) if self.prompts else None

    def _reference(self, cache_dir) -> torch.Tensor:
        """Full compute, generated once per (model weights, sampler inputs, steps) and kept in cache_dir."""
        s = self.sampler
        digest = hashlib.sha256(repr((self.layout.fingerprint, self.prompts, self.steps, tensor_digest(s.start()),
                                      weights_digest(s.denoiser))).encode())
        path = Path(cache_dir) / f"reference-{digest.hexdigest()[:12]}.pt" if cache_dir else None
        if path is not None and path.exists():
            return torch.load(path)
        full = np.ones((self.steps, self.layout.n_cells), dtype=bool)
        images = self.rollout.run([full], reuse_text_kv=False, share_prefixes=False)[0]
        self.rollout.stats = type(self.rollout.stats)()  # the reference is not a plan evaluation
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(images, path)
        return images

    def metrics(self, mask: np.ndarray, images: torch.Tensor) -> dict[str, float]:
        from accel.calibration import metrics as m

        out = {"flop_ratio": float(self.costs.ratio(mask, self.reuse_text_kv)),
               "psnr": float(m.psnr(images, self.reference).clamp(max=100).mean()),
               "ssim": float(m.ssim(images, self.reference).mean())}
        if self.classifier is not None:
            acc = self.classifier.attribute_accuracy(images, self.prompts)
            out.update({f"acc_{k}": float(v) for k, v in acc.items()})
            out["frechet"] = float(m.frechet_distance(images, self.reference, classifier=self.classifier))
        return out

    def evaluate(self, masks: list[np.ndarray], store: StudyStore | None = None, generation: int = 0) -> list[dict]:
        """Metrics per mask; masks found in ``store`` are not run, new ones are recorded there."""
        todo = [i for i, mk in enumerate(masks) if store is None or mk not in store]
        unique: dict[bytes, int] = {}
        for i in todo:
            unique.setdefault(np.asarray(masks[i], dtype=bool).tobytes(), i)
        fresh = {}
        if unique:
            idx = list(unique.values())
            images = self.rollout.run([masks[i] for i in idx], self.reuse_text_kv, self.share_prefixes)
            for i, img in zip(idx, images):
                fresh[np.asarray(masks[i], dtype=bool).tobytes()] = self.metrics(masks[i], img)
                if store is not None:
                    store.add(masks[i], fresh[np.asarray(masks[i], dtype=bool).tobytes()], generation)
        out = []
        for mk in masks:
            key = np.asarray(mk, dtype=bool).tobytes()
            out.append(fresh[key] if key in fresh else store.get(mk))
        return out


def _classifier_for(prompts: list[str]):
    """The embedded attribute classifier when every prompt is in its grammar, else None."""
    try:
        from accel.calibration import grammar
        from accel.calibration.metrics import AttributeClassifier

        for p in prompts:
            grammar.parse_prompt(p)
        return AttributeClassifier.load()
    except (accel.AccelError, ValueError, ImportError, OSError):
        return None


def tensor_digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def weights_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor_digest(p).encode())
    return h.hexdigest()[:16]
