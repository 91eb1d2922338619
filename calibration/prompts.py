"""The prompt sets, as text files in data/prompts/: 'calibration' (searches tune plans on it; combinations seen in
training) and 'test' (held out; half of it names (shape, colour, background) combinations never drawn in training).
`python -m accel.calibration.prompts` rewrites both files deterministically."""

from __future__ import annotations

from pathlib import Path

import torch

PROMPT_DIR = Path(__file__).parent / "data" / "prompts"
SETS = ("calibration", "test")


def load_prompts(name: str = "calibration") -> list[str]:
    """The prompts of a shipped set, one per line."""
    if name not in SETS:
        raise ValueError(f"unknown prompt set {name!r}; known: {', '.join(SETS)}")
    return [line.strip() for line in (PROMPT_DIR / f"{name}.txt").read_text().splitlines() if line.strip()]


def _unique(prompts: list[str], exclude: set[str], n: int) -> list[str]:
    out = []
    for p in prompts:
        if p not in exclude and p not in out:
            out.append(p)
    return out[:n]


def build_prompt_sets(n_calibration: int = 64, n_test: int = 320, seed: int = 20240601) -> dict[str, list[str]]:
    from accel.calibration.dataset import sample_scenes

    gen = torch.Generator().manual_seed(seed)
    calibration = _unique(sample_scenes(4 * n_calibration, gen, held_out="exclude").prompts(), set(), n_calibration)
    unseen = _unique(sample_scenes(2 * n_test, gen, held_out="only").prompts(), set(calibration), n_test // 2)
    rest = _unique(sample_scenes(2 * n_test, gen, held_out="include").prompts(), set(calibration) | set(unseen),
                   n_test - len(unseen))
    return {"calibration": calibration, "test": unseen + rest}


def write_prompt_sets() -> None:
    PROMPT_DIR.mkdir(parents=True, exist_ok=True)
    for name, prompts in build_prompt_sets().items():
        (PROMPT_DIR / f"{name}.txt").write_text("\n".join(prompts) + "\n")
        print(f"{name}: {len(prompts)} prompts -> {PROMPT_DIR / (name + '.txt')}")


if __name__ == "__main__":
    write_prompt_sets()
