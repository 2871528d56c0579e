/* A parameter sweep in C over the predator–prey model compiled as a library.
 *
 *   dyn build --lib examples/lotka_volterra.dyn -o libmodel.so     (writes libmodel.h too)
 *   cc examples/library/sweep.c -I . -L . -lmodel -Wl,-rpath,. -o sweep
 *   ./sweep
 *
 * For each fox mortality c, it runs the model to t = 30 and prints the smallest and largest
 * rabbit population seen: with deadlier foxes' lives (larger c) the rabbits' low point
 * rises (LANGUAGE.md §5–6). sweep.py does the same from Python. */
#include "libmodel.h"

#include <stdio.h>

int main(void) {
    dyn_model *m = dyn_model_new();
    if (!m) return 1;
    long c = dyn_model_param_index("foxes.c");
    long prey = dyn_model_output_index("prey");
    if (c < 0 || prey < 0) {
        fprintf(stderr, "the model has no foxes.c or no prey\n");
        return 1;
    }
    printf("c,min_prey,max_prey\n");
    for (int k = 0; k <= 4; k++) {
        double cv = 2.0 + 0.5 * k;
        /* An override restarts the model at t = 0 with the new param. */
        if (dyn_model_set_param(m, (size_t)c, cv) != 0) {
            fprintf(stderr, "%s\n", dyn_model_error(m));
            return 1;
        }
        double lo = dyn_model_get_output(m, (size_t)prey), hi = lo;
        while (dyn_model_time(m) < 30.0) {
            if (dyn_model_step(m, 100) != 0) {
                fprintf(stderr, "%s\n", dyn_model_error(m));
                return 1;
            }
            double v = dyn_model_get_output(m, (size_t)prey);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        printf("%g,%.4f,%.4f\n", cv, lo, hi);
    }
    dyn_model_free(m);
    return 0;
}
