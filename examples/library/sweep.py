"""The sweep of sweep.c from Python, through ctypes (no other package needed).

    dyn build --lib examples/lotka_volterra.dyn -o libmodel.so
    python3 examples/library/sweep.py ./libmodel.so

For each fox mortality c it runs the model to t = 30 and prints the smallest and largest
rabbit population seen.
"""

import ctypes
import sys


def open_model(path):
    lib = ctypes.CDLL(path)
    model = ctypes.c_void_p
    for name, args, res in [
        ("dyn_model_new", [], model),
        ("dyn_model_free", [model], None),
        ("dyn_model_error", [model], ctypes.c_char_p),
        ("dyn_model_param_index", [ctypes.c_char_p], ctypes.c_long),
        ("dyn_model_output_index", [ctypes.c_char_p], ctypes.c_long),
        ("dyn_model_set_param", [model, ctypes.c_size_t, ctypes.c_double], ctypes.c_int),
        ("dyn_model_get_output", [model, ctypes.c_size_t], ctypes.c_double),
        ("dyn_model_time", [model], ctypes.c_double),
        ("dyn_model_step", [model, ctypes.c_uint64], ctypes.c_int),
    ]:
        f = getattr(lib, name)
        f.argtypes, f.restype = args, res
    return lib


def main():
    lib = open_model(sys.argv[1] if len(sys.argv) > 1 else "./libmodel.so")
    m = lib.dyn_model_new()
    c = lib.dyn_model_param_index(b"foxes.c")
    prey = lib.dyn_model_output_index(b"prey")
    print("c,min_prey,max_prey")
    for k in range(5):
        cv = 2.0 + 0.5 * k
        if lib.dyn_model_set_param(m, c, cv) != 0:  # restarts at t = 0
            sys.exit(lib.dyn_model_error(m).decode())
        lo = hi = lib.dyn_model_get_output(m, prey)
        while lib.dyn_model_time(m) < 30.0:
            if lib.dyn_model_step(m, 100) != 0:
                sys.exit(lib.dyn_model_error(m).decode())
            v = lib.dyn_model_get_output(m, prey)
            lo, hi = min(lo, v), max(hi, v)
        print(f"{cv:g},{lo:.4f},{hi:.4f}")
    lib.dyn_model_free(m)


if __name__ == "__main__":
    main()
