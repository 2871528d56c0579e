"""Reference trajectory of the Lorenz system for the run tests.

sigma = 10, rho = 28, beta = 8/3, (x, y, z)(0) = (1, 1, 1), solved with mpmath's
arbitrary-precision Taylor-series integrator (mpmath.odefun) at 40 significant digits.
Prints (t, x, y, z) at t = 1, 2, 3, 4, 5. Run: python3 tests/reference/lorenz.py
"""
import mpmath as mp

mp.mp.dps = 40
sigma, rho, beta = mp.mpf(10), mp.mpf(28), mp.mpf(8) / 3


def f(t, u):
    x, y, z = u
    return [sigma * (y - x), x * (rho - z) - y, x * y - beta * z]


sol = mp.odefun(f, 0, [mp.mpf(1), mp.mpf(1), mp.mpf(1)])
for t in range(1, 6):
    x, y, z = sol(t)
    print(f"({t}.0, {mp.nstr(x, 20)}, {mp.nstr(y, 20)}, {mp.nstr(z, 20)}),")
