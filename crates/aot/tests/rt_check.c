/* Test driver for the runtime (crates/aot/tests/runtime.rs): reads one request a line and
 * answers one line, so the test can compare the C runtime with Rust.
 *   fmt HEX        -> dyn_fmt_f64 of the double with these bits
 *   time HEX       -> dyn_fmt_time
 *   parse TEXT     -> the bits dyn_parse_f64 reads, or "err"
 *   NAME HEX HEX   -> the bits of shim NAME (one or two arguments)
 *   noise SEED N   -> the bits of N normal samples */
#include "dyn_rt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double dyn_exp(double), dyn_log(double), dyn_sin(double), dyn_cos(double), dyn_tan(double),
    dyn_tanh(double), dyn_sinh(double), dyn_cosh(double), dyn_atan(double), dyn_round(double);
double dyn_powf(double, double), dyn_atan2(double, double), dyn_remf(double, double),
    dyn_min(double, double), dyn_max(double, double), dyn_idiv(double, double),
    dyn_irem(double, double), dyn_ipow(double, double);

static double from_hex(const char *s) {
    uint64_t u = strtoull(s, NULL, 16);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static void put_bits(double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    printf("%016llx\n", (unsigned long long)u);
}

int main(void) {
    static const struct {
        const char *name;
        double (*f1)(double);
        double (*f2)(double, double);
    } shims[] = {
        {"dyn_exp", dyn_exp, 0},     {"dyn_log", dyn_log, 0},       {"dyn_sin", dyn_sin, 0},
        {"dyn_cos", dyn_cos, 0},     {"dyn_tan", dyn_tan, 0},       {"dyn_tanh", dyn_tanh, 0},
        {"dyn_sinh", dyn_sinh, 0},   {"dyn_cosh", dyn_cosh, 0},     {"dyn_atan", dyn_atan, 0},
        {"dyn_round", dyn_round, 0}, {"dyn_powf", 0, dyn_powf},     {"dyn_atan2", 0, dyn_atan2},
        {"dyn_remf", 0, dyn_remf},   {"dyn_min", 0, dyn_min},       {"dyn_max", 0, dyn_max},
        {"dyn_idiv", 0, dyn_idiv},   {"dyn_irem", 0, dyn_irem},     {"dyn_ipow", 0, dyn_ipow},
    };
    char line[4096];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        char *op = strtok(line, " ");
        if (!op) continue;
        char *a = strtok(NULL, " ");
        char *b = strtok(NULL, " ");
        char out[512];
        if (!strcmp(op, "fmt")) {
            dyn_fmt_f64(from_hex(a), out, sizeof out);
            puts(out);
        } else if (!strcmp(op, "time")) {
            dyn_fmt_time(from_hex(a), out, sizeof out);
            puts(out);
        } else if (!strcmp(op, "parse")) {
            double d;
            if (dyn_parse_f64(a ? a : "", &d))
                puts("err");
            else
                put_bits(d);
        } else if (!strcmp(op, "noise")) {
            dyn_noise g;
            dyn_noise_seed(&g, strtoull(a, NULL, 10));
            long n = atol(b);
            for (long i = 0; i < n; i++) put_bits(dyn_noise_normal(&g));
        } else {
            int found = 0;
            for (size_t k = 0; k < sizeof shims / sizeof shims[0]; k++) {
                if (strcmp(op, shims[k].name)) continue;
                found = 1;
                put_bits(shims[k].f1 ? shims[k].f1(from_hex(a)) : shims[k].f2(from_hex(a), from_hex(b)));
            }
            if (!found) puts("?");
        }
    }
    return 0;
}
