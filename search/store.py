"""The study store: every evaluation of a search, kept in an optuna storage (a SQLite file by default).

Each evaluation is one COMPLETE trial whose values are the objectives and whose user attributes hold the plan's
mask (hex of its packed bits), every measured metric and the generation it belongs to. The study's own user
attributes pin the setup (model, steps, prompts, seed, objectives): resuming a store made for another setup is
refused. optuna-dashboard opens the same file: ``optuna-dashboard sqlite:///runs/ecad/study.db``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from accel.errors import AccelError
from accel.search.front import sense


def mask_key(mask: np.ndarray) -> str:
    return np.packbits(np.asarray(mask, dtype=bool)).tobytes().hex()


def mask_from_key(key: str, shape: tuple[int, int]) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(key), dtype=np.uint8))[: shape[0] * shape[1]]
    return bits.reshape(shape).astype(bool)


def setup_digest(setup: dict) -> str:
    return hashlib.sha256(json.dumps(setup, sort_keys=True).encode()).hexdigest()[:16]


class StudyStore:
    def __init__(self, storage: str | Path, study_name: str, setup: dict, objectives: list[str]) -> None:
        import optuna

        optuna.logging.set_verbosity(logging.WARNING)
        url = str(storage)
        if "://" not in url:
            Path(url).parent.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{url}"
        directions = ["maximize" if sense(o) > 0 else "minimize" for o in objectives]
        self.study = optuna.create_study(storage=url, study_name=study_name, directions=directions,
                                         load_if_exists=True)
        digest = setup_digest(setup)
        known = self.study.user_attrs.get("setup_digest")
        if known is None:
            self.study.set_user_attr("setup_digest", digest)
            self.study.set_user_attr("setup", setup)
            self.study.set_user_attr("objectives", objectives)
        elif known != digest:
            raise AccelError(
                f"the store {url} (study {study_name!r}) holds a search for another setup "
                f"({self.study.user_attrs.get('setup')}); use another --out folder or the same settings to resume."
            )
        self.objectives = objectives
        self.url = url
        self._done: dict[str, dict] = {}
        for t in self.study.get_trials(deepcopy=False):
            if t.state.name == "COMPLETE" and "mask" in t.user_attrs:
                self._done[t.user_attrs["mask"]] = t.user_attrs["metrics"]

    def __contains__(self, mask: np.ndarray) -> bool:
        return mask_key(mask) in self._done

    def __len__(self) -> int:
        return len(self._done)

    def get(self, mask: np.ndarray) -> dict | None:
        return self._done.get(mask_key(mask))

    def add(self, mask: np.ndarray, metrics: dict, generation: int) -> None:
        import optuna

        key = mask_key(mask)
        if key in self._done:
            return
        trial = optuna.trial.create_trial(values=[float(metrics[o]) for o in self.objectives],
                                          user_attrs={"mask": key, "metrics": metrics, "generation": generation})
        self.study.add_trial(trial)  # one transaction: a kill leaves it in or out, never half-written
        self._done[key] = metrics

    def items(self):
        return list(self._done.items())
