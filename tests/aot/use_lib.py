"""Uses a model compiled with `dyn build --lib examples/lotka_volterra.dyn` from Python
through ctypes, and checks it (run by crates/cli/tests/build.rs):

    python3 use_lib.py LIBRARY EXPECTED.csv EXPECTED_C25.csv

EXPECTED.csv is `dyn run examples/lotka_volterra.dyn --until 1 --every 0.001` and
EXPECTED_C25.csv the same with `--param foxes.c=2.5`: the library, stepped one dt at a
time, must give every row to the bit. Exits 0 when every check passes.
"""

import csv
import ctypes
import math
import sys


def load(path):
    lib = ctypes.CDLL(path)
    model = ctypes.c_void_p
    sigs = {
        "dyn_model_new": ([], model),
        "dyn_model_free": ([model], None),
        "dyn_model_error": ([model], ctypes.c_char_p),
        "dyn_model_system": ([], ctypes.c_char_p),
        "dyn_model_reset": ([model], ctypes.c_int),
        "dyn_model_param_count": ([], ctypes.c_size_t),
        "dyn_model_param_name": ([ctypes.c_size_t], ctypes.c_char_p),
        "dyn_model_param_index": ([ctypes.c_char_p], ctypes.c_long),
        "dyn_model_set_param_by_name": ([model, ctypes.c_char_p, ctypes.c_double], ctypes.c_int),
        "dyn_model_get_param": ([model, ctypes.c_size_t], ctypes.c_double),
        "dyn_model_output_count": ([], ctypes.c_size_t),
        "dyn_model_output_name": ([ctypes.c_size_t], ctypes.c_char_p),
        "dyn_model_get_output": ([model, ctypes.c_size_t], ctypes.c_double),
        "dyn_model_state_count": ([], ctypes.c_size_t),
        "dyn_model_state_name": ([ctypes.c_size_t], ctypes.c_char_p),
        "dyn_model_get_state": ([model, ctypes.c_size_t], ctypes.c_double),
        "dyn_model_get": ([model, ctypes.c_char_p, ctypes.POINTER(ctypes.c_double)], ctypes.c_int),
        "dyn_model_time": ([model], ctypes.c_double),
        "dyn_model_step": ([model, ctypes.c_uint64], ctypes.c_int),
        "dyn_model_run": ([model, ctypes.c_uint64, ctypes.POINTER(ctypes.c_double)], ctypes.c_uint64),
    }
    for name, (args, res) in sigs.items():
        f = getattr(lib, name)
        f.argtypes = args
        f.restype = res
    return lib


def rows(path):
    with open(path, newline="") as f:
        r = csv.reader(f)
        assert next(r) == ["t", "prey", "predators"]
        return [[float(x) for x in row] for row in r]


def main():
    lib_path, expected, expected_c25 = sys.argv[1:4]
    lib = load(lib_path)
    failures = []

    def check(cond, msg):
        if not cond:
            failures.append(msg)

    check(lib.dyn_model_system() == b"LotkaVolterra", "system name")
    outs = [lib.dyn_model_output_name(i).decode() for i in range(lib.dyn_model_output_count())]
    check(outs == ["prey", "predators"], f"outputs {outs}")
    params = [lib.dyn_model_param_name(i).decode() for i in range(lib.dyn_model_param_count())]
    check("foxes.c" in params, f"params {params}")
    states = [lib.dyn_model_state_name(i).decode() for i in range(lib.dyn_model_state_count())]
    check(states == ["rabbits.r", "foxes.f"], f"states {states}")

    for path, c in [(expected, None), (expected_c25, 2.5)]:
        m = lib.dyn_model_new()
        if c is not None:
            check(lib.dyn_model_set_param_by_name(m, b"foxes.c", c) == 0, "set foxes.c")
            k = lib.dyn_model_param_index(b"foxes.c")
            check(lib.dyn_model_get_param(m, k) == c, "foxes.c was set")
        want = rows(path)
        # Row 0 is the initial state; then one step per row, compared to the bit.
        for i, (t, prey, pred) in enumerate(want):
            if i > 0:
                check(lib.dyn_model_step(m, 1) == 0, f"step {i}: {lib.dyn_model_error(m)}")
            got = (lib.dyn_model_get_output(m, 0), lib.dyn_model_get_output(m, 1))
            check(got == (prey, pred), f"{path} row {i}: {got} vs {(prey, pred)}")
            check(math.isclose(lib.dyn_model_time(m), t, rel_tol=1e-12, abs_tol=1e-12), f"row {i}: t")
        v = ctypes.c_double()
        check(lib.dyn_model_get(m, b"rabbits.r", ctypes.byref(v)) == 0, "get rabbits.r")
        check(v.value == lib.dyn_model_get_state(m, 0), "rabbits.r is state 0")
        check(len(want) == 1001, f"{len(want)} rows")
        lib.dyn_model_free(m)

    # dyn_model_run fills a buffer of n rows of outputs.
    m = lib.dyn_model_new()
    buf = (ctypes.c_double * (2 * 100))()
    check(lib.dyn_model_run(m, 100, buf) == 100, "run 100 steps")
    want = rows(expected)
    check((buf[2 * 99], buf[2 * 99 + 1]) == tuple(want[100][1:]), "run's last row")
    check(lib.dyn_model_set_param_by_name(m, b"nope", 1.0) != 0, "unknown param refused")
    check(b"nope" in lib.dyn_model_error(m), "the error names it")
    lib.dyn_model_free(m)

    if failures:
        for f in failures[:20]:
            print("use_lib.py:", f, file=sys.stderr)
        print(f"{len(failures)} checks failed", file=sys.stderr)
        sys.exit(1)
    print("use_lib.py: all checks passed")


if __name__ == "__main__":
    main()
