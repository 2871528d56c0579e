#!/usr/bin/env python3
"""Writes the spiral data of examples/neural_ode_spiral.dyn (the demo of Chen et al., 2018,
"Neural Ordinary Differential Equations", as in torchdiffeq's ode_demo.py):

    dy/dt = (y^3) A,   A = [[-0.1, 2.0], [-2.0, -0.1]],   y(0) = (2, 0),   t in [0, 25]

(y a row vector, y^3 element-wise), sampled at 1,000 evenly spaced times (dt = 25/999). The
reference solution is classical RK4 with 100 substeps per sample (h = 2.5e-4; the error of
RK4 at that step is far below the printed digits).

spiral_segments.csv: one row per start index i = 0 .. 989, the segment of 10 samples
    y(t_i), …, y(t_{i+9}) as columns s0 … s19 (s[2k], s[2k+1] = sample k), `first` = 0.
spiral_trajectory.csv: one row per sample i = 0 .. 999, the same columns with the segment
    starting at i (cut at the end, repeating the last sample), `first` = 1 on row 0 only.

Run from the repository root: python3 examples/data/make_spiral.py
"""
import csv
import os

A = [[-0.1, 2.0], [-2.0, -0.1]]
N, T, SUB, SEG = 1000, 25.0, 100, 10


def f(y):
    c = [y[0] ** 3, y[1] ** 3]
    return [c[0] * A[0][0] + c[1] * A[1][0], c[0] * A[0][1] + c[1] * A[1][1]]


def rk4(y, h):
    k1 = f(y)
    k2 = f([y[j] + 0.5 * h * k1[j] for j in range(2)])
    k3 = f([y[j] + 0.5 * h * k2[j] for j in range(2)])
    k4 = f([y[j] + h * k3[j] for j in range(2)])
    return [y[j] + h / 6.0 * (k1[j] + 2 * k2[j] + 2 * k3[j] + k4[j]) for j in range(2)]


def main():
    dt = T / (N - 1)
    ys = [[2.0, 0.0]]
    for _ in range(N - 1):
        y = ys[-1]
        for _ in range(SUB):
            y = rk4(y, dt / SUB)
        ys.append(y)
    here = os.path.dirname(os.path.abspath(__file__))
    header = [f"s{k}" for k in range(2 * SEG)] + ["first"]

    def row(i, first):
        out = []
        for k in range(SEG):
            y = ys[min(i + k, N - 1)]
            out += [repr(y[0]), repr(y[1])]
        return out + [str(first)]

    with open(os.path.join(here, "spiral_segments.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for i in range(N - SEG):
            w.writerow(row(i, 0))
    with open(os.path.join(here, "spiral_trajectory.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for i in range(N):
            w.writerow(row(i, 1 if i == 0 else 0))


if __name__ == "__main__":
    main()
