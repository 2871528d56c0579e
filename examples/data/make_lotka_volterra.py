#!/usr/bin/env python3
"""Makes lotka_volterra_noisy.csv: the Lotka–Volterra model of ../fit_lotka_volterra.dyn
with its true parameters, integrated by classic RK4 (dt = 0.01, the operations of dyn's own
RK4 step), recorded every 0.05 for t in [0, 5], each value multiplied by 1 + 0.01 N(0, 1)
(1 % noise, Python's `random` seeded with 7). Run from the repository root:

    python3 examples/data/make_lotka_volterra.py > examples/data/lotka_volterra_noisy.csv
"""
import random

A, B, C, D = 1.5, 1.0, 3.0, 1.0
X0, Y0 = 10.0, 5.0
DT, EVERY, UNTIL = 0.01, 5, 500  # every 5 steps, 500 steps


def f(x, y):
    return A * x - B * x * y, -C * y + D * x * y


def rk4(x, y, h):
    k1 = f(x, y)
    k2 = f(x + 0.5 * h * k1[0], y + 0.5 * h * k1[1])
    k3 = f(x + 0.5 * h * k2[0], y + 0.5 * h * k2[1])
    k4 = f(x + h * k3[0], y + h * k3[1])
    return (
        x + h / 6.0 * (k1[0] + 2.0 * k2[0] + 2.0 * k3[0] + k4[0]),
        y + h / 6.0 * (k1[1] + 2.0 * k2[1] + 2.0 * k3[1] + k4[1]),
    )


def main():
    rng = random.Random(7)
    x, y = X0, Y0
    print("t,prey,predators")
    for k in range(UNTIL + 1):
        if k % EVERY == 0:
            nx = x * (1.0 + 0.01 * rng.gauss(0.0, 1.0))
            ny = y * (1.0 + 0.01 * rng.gauss(0.0, 1.0))
            print(f"{k * DT:.2f},{nx!r},{ny!r}")
        x, y = rk4(x, y, DT)


if __name__ == "__main__":
    main()
