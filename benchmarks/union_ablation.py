"""BAC's ablation from a bench table: the Bubbling Union plans against per-cell BAC without it at equal FLOPs.

Reads the table.csv that `accel bench --plans runs/bac runs/bac/no-union ...` writes. For each Bubbling Union plan,
the PSNR of the no-union plans linearly interpolated at the same FLOP ratio (between the two nearest no-union
plans; outside their range nothing is compared).

    python benchmarks/union_ablation.py runs/bench/table.csv
"""

from __future__ import annotations

import csv
import sys

import numpy as np


def main(path: str) -> None:
    with open(path) as f:
        rows = list(csv.DictReader(f))

    def pick(family: str) -> list[tuple[float, float, str]]:
        return sorted((float(r["flop_ratio"]), float(r["psnr"]), r["method"]) for r in rows if r["family"] == family)

    union, plain = pick("accel bac front (bac)"), pick("accel bac-no-union front (no-union)")
    if not union or not plain:
        raise SystemExit(f"{path}: no BAC rows (bench with --plans runs/bac runs/bac/no-union)")
    x, y = np.array([p[0] for p in plain]), np.array([p[1] for p in plain])
    print("| union plan | FLOP ratio | PSNR | no-union PSNR at that ratio | difference |")
    print("|---|---|---|---|---|")
    wins = 0
    for ratio, psnr, name in union:
        if not x.min() <= ratio <= x.max():
            print(f"| {name} | {ratio:.2f}x | {psnr:.1f} | (outside {x.min():.2f}-{x.max():.2f}x) | |")
            continue
        ref = float(np.interp(ratio, x, y))
        wins += psnr > ref
        print(f"| {name} | {ratio:.2f}x | {psnr:.1f} | {ref:.1f} | {psnr - ref:+.1f} dB |")
    print(f"the Bubbling Union is better at {wins} of the compared ratios")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/bench/table.csv")
