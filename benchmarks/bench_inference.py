"""The crossed inference, measured on synthetic data with known truth: coverage of the 95%
interval of a paired difference and the false-positive rate of its test, per design.

Prints a table (does not assert; ``tests/test_inference.py`` asserts 0.92-0.98 and <= 7% on
the first two settings). Settings (``icl_tokens.analysis.simulate``): ``binary`` accuracies from
a logistic model with crossed effects; ``gauss`` margins with Gemma-3-270M's pilot components;
``stress``: Gaussian with the seed-by-condition variance dominating (seed 0.5, example 0.98,
residual 0.5), the known weak spot at 2 seeds.

Usage::

    python benchmarks/bench_inference.py                 # 1,000 simulations per cell
    python benchmarks/bench_inference.py --n-sim 4000
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from icl_tokens.analysis import simulate
from icl_tokens.analysis.inference import crossed_mean

DESIGNS = [(2, 12), (3, 12), (5, 50), (15, 24)]
STRESS = dict(seed=0.5, example=0.98, residual=0.5)


def _stress(s: int, e: int, n_sim: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    cover = reject = 0
    for _ in range(n_sim):
        est = crossed_mean(simulate.gauss_difference(rng, s, e, 0.0, STRESS))
        cover += est.ci_low <= 0 <= est.ci_high
        reject += est.p < 0.05
    return cover / n_sim, reject / n_sim


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-sim", type=int, default=1000)
    args = ap.parse_args()
    print(f"{args.n_sim} simulations per cell; coverage of the 95% interval (no effect / "
          "with an effect) and the false-positive rate at 5% (no effect)")
    print(f"{'setting':8} {'design':>7} {'cover0':>7} {'cover1':>7} {'FPR':>6} {'sec':>5}")
    for kind, delta in (("binary", 0.8), ("gauss", 0.1), ("stress", None)):
        for s, e in DESIGNS:
            t = time.perf_counter()
            if kind == "stress":
                c0, fpr = _stress(s, e, args.n_sim, 1)
                c1 = c0  # a location shift leaves a Gaussian's coverage unchanged
            else:
                c0, fpr = simulate.check_method(kind, s, e, 0.0, n_sim=args.n_sim, seed=1)
                c1, _ = simulate.check_method(kind, s, e, delta, n_sim=args.n_sim, seed=2)
            print(f"{kind:8} {s:>3}x{e:<3} {c0:7.3f} {c1:7.3f} {fpr:6.3f} "
                  f"{time.perf_counter() - t:5.1f}")


if __name__ == "__main__":
    main()
