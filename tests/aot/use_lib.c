/* Uses a model compiled with `dyn build --lib examples/lotka_volterra.dyn -o libmodel.so`
 * through its C API and checks it (run by crates/cli/tests/build.rs):
 *
 *   use_lib EXPECTED.csv
 *
 * EXPECTED.csv is `dyn run examples/lotka_volterra.dyn --until 1 --every 0.001`: the
 * library, stepped one dt at a time, must give every row to the bit. Exit code 0 when all
 * checks pass; each failure is printed. */
#include "libmodel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...)                                  \
    do {                                                  \
        if (!(cond)) {                                    \
            failures++;                                   \
            fprintf(stderr, "use_lib.c:%d: ", __LINE__);  \
            fprintf(stderr, __VA_ARGS__);                 \
            fprintf(stderr, "\n");                        \
        }                                                 \
    } while (0)

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: use_lib EXPECTED.csv\n");
        return 2;
    }
    CHECK(!strcmp(dyn_model_system(), "LotkaVolterra"), "system %s", dyn_model_system());
    CHECK(dyn_model_discrete() == 0, "continuous");
    CHECK(dyn_model_output_count() == 2, "2 outputs");
    long prey = dyn_model_output_index("prey"), pred = dyn_model_output_index("predators");
    CHECK(prey == 0 && pred == 1, "output indices %ld %ld", prey, pred);
    CHECK(dyn_model_output_index("nothing") == -1, "unknown output");
    CHECK(dyn_model_state_count() == 2, "2 states");
    long r = dyn_model_state_index("rabbits.r");
    CHECK(r >= 0, "state rabbits.r");
    long c = dyn_model_param_index("foxes.c");
    CHECK(c >= 0, "param foxes.c");
    CHECK(dyn_model_param_name(99) == NULL, "no param 99");

    dyn_model *m = dyn_model_new();
    CHECK(m != NULL, "new");
    CHECK(dyn_model_get_output(m, (size_t)prey) == 10.0, "initial prey");
    CHECK(dyn_model_get_output(m, (size_t)pred) == 5.0, "initial predators");
    CHECK(dyn_model_get_state(m, (size_t)r) == 10.0, "initial state");
    CHECK(dyn_model_get_param(m, (size_t)c) == 3.0, "foxes.c = 3");
    CHECK(dyn_model_dt(m) == 0.001, "dt of the run block");
    CHECK(dyn_model_time(m) == 0.0, "t = 0");

    /* Step by step against dyn run's trace, to the bit. */
    FILE *f = fopen(argv[1], "r");
    CHECK(f != NULL, "cannot open %s", argv[1]);
    if (!f) return 1;
    char line[512];
    CHECK(fgets(line, sizeof line, f) && !strcmp(line, "t,prey,predators\n"), "header");
    long rows = 0;
    while (fgets(line, sizeof line, f)) {
        double t = strtod(strtok(line, ","), NULL);
        double a = strtod(strtok(NULL, ","), NULL);
        double b = strtod(strtok(NULL, ",\n"), NULL);
        if (rows > 0) CHECK(dyn_model_step(m, 1) == 0, "step: %s", dyn_model_error(m));
        /* dyn run writes times rounded to 13 significant digits */
        CHECK(fabs(dyn_model_time(m) - t) <= 1e-12 * fmax(1.0, t), "row %ld: t %.17g vs %.17g", rows,
              dyn_model_time(m), t);
        CHECK(dyn_model_get_output(m, 0) == a, "row %ld: prey %.17g vs %.17g", rows,
              dyn_model_get_output(m, 0), a);
        CHECK(dyn_model_get_output(m, 1) == b, "row %ld: predators %.17g vs %.17g", rows,
              dyn_model_get_output(m, 1), b);
        rows++;
    }
    fclose(f);
    CHECK(rows == 1001, "rows %ld", rows);
    double v;
    CHECK(dyn_model_get(m, "foxes.f", &v) == 0 && v == dyn_model_get_output(m, 1), "get by name");
    CHECK(dyn_model_get(m, "foxes.nothing", &v) != 0, "get of an unknown name");

    /* A param override restarts at t = 0; a run writes rows of outputs. */
    CHECK(dyn_model_set_param_by_name(m, "foxes.c", 2.5) == 0, "set param");
    CHECK(dyn_model_time(m) == 0.0 && dyn_model_get_output(m, 0) == 10.0, "restarted");
    CHECK(dyn_model_get_param(m, (size_t)c) == 2.5, "foxes.c = 2.5");
    double out[2 * 50];
    CHECK(dyn_model_run(m, 50, out) == 50, "run 50 steps");
    dyn_model *n = dyn_model_new();
    CHECK(dyn_model_step(n, 50) == 0, "step 50");
    CHECK(out[2 * 49] != dyn_model_get_output(n, 0), "the override changes the trace");
    CHECK(dyn_model_set_param(n, (size_t)c, 2.5) == 0 && dyn_model_step(n, 50) == 0, "same again");
    CHECK(out[2 * 49] == dyn_model_get_output(n, 0) && out[2 * 49 + 1] == dyn_model_get_output(n, 1),
          "two instances with the same settings agree");
    CHECK(dyn_model_set_param_by_name(n, "foxes.zzz", 1.0) != 0, "unknown param");
    CHECK(strstr(dyn_model_error(n), "foxes.zzz") != NULL, "error names it: %s", dyn_model_error(n));
    CHECK(dyn_model_set_dt(n, -1.0) != 0, "negative dt refused");
    CHECK(dyn_model_set_state(n, (size_t)r, NAN) == 0, "set state");
    CHECK(dyn_model_step(n, 1) != 0, "a NaN state stops the run");
    CHECK(strstr(dyn_model_error(n), "rabbits.r") != NULL, "error names the state: %s",
          dyn_model_error(n));
    CHECK(dyn_model_reset(n) == 0 && dyn_model_step(n, 1) == 0, "reset clears the failure");
    dyn_model_free(m);
    dyn_model_free(n);
    dyn_model_free(NULL);
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("use_lib: all checks passed (%ld rows)\n", rows);
    return 0;
}
