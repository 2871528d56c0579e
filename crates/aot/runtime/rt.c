/* The dyn ahead-of-time runtime, shared part: math shims, the noise generator, and the
 * number formats of `dyn run` (see dyn_rt.h). */
#include "dyn_rt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef DYN_API
#define DYN_API
#endif

/* ---- math shims: the arithmetic of crates/jit/src/shims.rs (Rust's f64 methods call the
 * platform's libm for these, so the C library gives the same bits) ---- */

double dyn_exp(double x) { return exp(x); }
double dyn_log(double x) { return log(x); }
double dyn_sin(double x) { return sin(x); }
double dyn_cos(double x) { return cos(x); }
double dyn_tan(double x) { return tan(x); }
double dyn_tanh(double x) { return tanh(x); }
double dyn_sinh(double x) { return sinh(x); }
double dyn_cosh(double x) { return cosh(x); }
double dyn_atan(double x) { return atan(x); }
/* Rust's `round`: half away from zero, as C's round. */
double dyn_round(double x) { return round(x); }
double dyn_powf(double x, double y) { return pow(x, y); }
double dyn_atan2(double x, double y) { return atan2(x, y); }

/* Rust's `f64::min`/`max`: a NaN operand yields the other one. */
double dyn_min(double x, double y) {
    if (isnan(x)) return y;
    if (isnan(y)) return x;
    return y < x ? y : x;
}
double dyn_max(double x, double y) {
    if (isnan(x)) return y;
    if (isnan(y)) return x;
    return y > x ? y : x;
}

/* Rust's `rem_euclid` for f64: the remainder of fmod made non-negative. */
double dyn_remf(double x, double y) {
    double r = fmod(x, y);
    return r < 0.0 ? r + fabs(y) : r;
}

/* Rust's saturating `f64 as i64`: NaN is 0, out-of-range values clamp. */
static int64_t to_i64(double x) {
    if (isnan(x)) return 0;
    if (x >= 9223372036854775808.0) return INT64_MAX;
    if (x <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)x;
}

/* Int division: NaN where Rust's `checked_div` fails (a zero divisor, MIN / -1). */
double dyn_idiv(double x, double y) {
    int64_t a = to_i64(x), b = to_i64(y);
    if (b == 0 || (a == INT64_MIN && b == -1)) return NAN;
    return (double)(a / b);
}

/* Euclidean Int remainder (`checked_rem_euclid`). */
double dyn_irem(double x, double y) {
    int64_t a = to_i64(x), b = to_i64(y);
    if (b == 0 || (a == INT64_MIN && b == -1)) return NAN;
    int64_t r = a % b;
    if (r < 0) {
        /* r.wrapping_add(b.wrapping_abs()) */
        uint64_t ab = b < 0 ? (uint64_t)0 - (uint64_t)b : (uint64_t)b;
        r = (int64_t)((uint64_t)r + ab);
    }
    return (double)r;
}

/* Int power: NaN for a negative or huge exponent and on overflow (`checked_pow`, the same
 * square-and-multiply steps as Rust's). */
double dyn_ipow(double x, double y) {
    int64_t e64 = to_i64(y);
    if (e64 < 0 || e64 > (int64_t)UINT32_MAX) return NAN;
    uint32_t e = (uint32_t)e64;
    int64_t base = to_i64(x), acc = 1;
    if (e == 0) return 1.0;
    for (;;) {
        if (e & 1) {
            if (__builtin_mul_overflow(acc, base, &acc)) return NAN;
            if (e == 1) return (double)acc;
        }
        e /= 2;
        if (__builtin_mul_overflow(base, base, &base)) return NAN;
    }
}

/* ---- noise: xoshiro256++ seeded by SplitMix64, normal samples by Marsaglia's polar
 * method (crates/ir/src/numeric.rs) ---- */

void dyn_noise_seed(dyn_noise *g, uint64_t seed) {
    uint64_t z = seed;
    for (int i = 0; i < 4; i++) {
        z += 0x9e3779b97f4a7c15ULL;
        uint64_t x = z;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
        g->s[i] = x ^ (x >> 31);
    }
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t noise_next(dyn_noise *g) {
    uint64_t *s = g->s;
    uint64_t out = rotl(s[0] + s[3], 23) + s[0];
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

static double noise_uniform(dyn_noise *g) {
    return (double)(noise_next(g) >> 11) * (1.0 / 9007199254740992.0);
}

double dyn_noise_normal(dyn_noise *g) {
    for (;;) {
        double u = 2.0 * noise_uniform(g) - 1.0;
        double v = 2.0 * noise_uniform(g) - 1.0;
        double s = u * u + v * v;
        if (s < 1.0 && s > 0.0) return u * sqrt(-2.0 * log(s) / s);
    }
}

/* `randn()`: `cell` holds the generator's address and the bits of the noise scale. */
double dyn_randn(const uint64_t *cell) {
    dyn_noise *g = (dyn_noise *)(uintptr_t)cell[0];
    double scale;
    memcpy(&scale, &cell[1], sizeof scale);
    return dyn_noise_normal(g) * scale;
}

/* ---- io words ---- */

void dyn_io_ptr(double *io, size_t word, const void *ptr) {
    uint64_t v = (uint64_t)(uintptr_t)ptr;
    memcpy(&io[word], &v, sizeof v);
}

void dyn_io_u64(double *io, size_t word, uint64_t v) { memcpy(&io[word], &v, sizeof v); }

uint64_t dyn_io_get_u64(const double *io, size_t word) {
    uint64_t v;
    memcpy(&v, &io[word], sizeof v);
    return v;
}

/* ---- numbers as text ---- */

/* The k-significant-digit decimal nearest to `a` (> 0, finite) that reads back as `a`, if
 * any: its digits (no sign, no point) and the exponent of its first digit. The decimals of
 * k digits that read back as `a` form a run around `a`, so it is the correctly rounded one
 * (printf's) or, when that one misses on the narrow side of a power of two, its neighbour
 * on the other side of `a`. */
static int shortest_k(double a, int k, char *digits, int *exp10) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.*e", k - 1, a);
    if (strtod(buf, NULL) == a) {
        int n = 0;
        for (const char *c = buf; *c && *c != 'e'; c++)
            if (*c >= '0' && *c <= '9') digits[n++] = *c;
        digits[n] = 0;
        *exp10 = atoi(strchr(buf, 'e') + 1);
        return 1;
    }
    /* the neighbour: mantissa ± 1 in the last place */
    uint64_t m = 0;
    for (const char *c = buf; *c && *c != 'e'; c++)
        if (*c >= '0' && *c <= '9') m = m * 10 + (uint64_t)(*c - '0');
    int e = atoi(strchr(buf, 'e') + 1);
    uint64_t lo = 1;
    for (int i = 1; i < k; i++) lo *= 10;
    if (strtod(buf, NULL) < a) {
        m += 1;
        if (m == lo * 10) {
            m = lo;
            e += 1;
        }
    } else {
        if (m == lo) {
            m = lo * 10 - 1;
            e -= 1;
        } else {
            m -= 1;
        }
    }
    char cand[64];
    snprintf(cand, sizeof cand, "%llue%d", (unsigned long long)m, e - (k - 1));
    if (strtod(cand, NULL) != a) return 0;
    snprintf(digits, 24, "%llu", (unsigned long long)m);
    *exp10 = e;
    return 1;
}

/* Does the decimal m × 10^(e - k + 1) (k digits) read back as `a`? */
static int reads_back(double a, uint64_t m, int e, int k) {
    char cand[64];
    snprintf(cand, sizeof cand, "%llue%d", (unsigned long long)m, e - (k - 1));
    return strtod(cand, NULL) == a;
}

/* When `a` lies exactly halfway between two k-digit decimals that both read back, Rust
 * writes the upper one where printf rounds to even: take the upper one. */
static void fix_tie(double a, int k, char *digits, int *exp10) {
    char t[64];
    snprintf(t, sizeof t, "%.*e", k, a); /* k + 1 digits: a tie shows a final 5 */
    if (t[k + 1] != '5') return;
    char big[1200];
    snprintf(big, sizeof big, "%.800e", a); /* the exact expansion */
    char ds[900];
    int n = 0;
    for (const char *c = big; *c && *c != 'e'; c++)
        if (*c >= '0' && *c <= '9') ds[n++] = *c;
    if (n < k + 1 || ds[k] != '5') return;
    for (int i = k + 1; i < n; i++)
        if (ds[i] != '0') return;
    int e = atoi(strchr(big, 'e') + 1);
    uint64_t down = 0, lo = 1;
    for (int i = 0; i < k; i++) down = down * 10 + (uint64_t)(ds[i] - '0');
    for (int i = 1; i < k; i++) lo *= 10;
    uint64_t up = down + 1;
    int eu = e;
    if (up == lo * 10) {
        up = lo;
        eu = e + 1;
    }
    if (reads_back(a, up, eu, k)) {
        snprintf(digits, 24, "%llu", (unsigned long long)up);
        *exp10 = eu;
    } else if (reads_back(a, down, e, k)) {
        snprintf(digits, 24, "%llu", (unsigned long long)down);
        *exp10 = e;
    }
}

size_t dyn_fmt_f64(double v, char *out, size_t cap) {
    if (cap < 2) return 0;
    if (isnan(v)) return (size_t)snprintf(out, cap, "NaN");
    if (isinf(v)) return (size_t)snprintf(out, cap, v < 0 ? "-inf" : "inf");
    const char *sign = signbit(v) ? "-" : "";
    double a = fabs(v);
    if (a == 0.0) return (size_t)snprintf(out, cap, "%s0", sign);
    /* Integers below 2^53: their digits are the shortest form. */
    if (a < 9007199254740992.0 && a == floor(a))
        return (size_t)snprintf(out, cap, "%s%.0f", sign, a);
    char digits[32];
    int e10 = 0;
    /* The fewest digits that read back: 15, 16 or 17 for most values, fewer for short
     * decimals (having k such digits implies having k + 1). */
    int k;
    if (!shortest_k(a, 15, digits, &e10)) {
        k = shortest_k(a, 16, digits, &e10) ? 16 : 17;
    } else {
        int lo = 1, hi = 15;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (shortest_k(a, mid, digits, &e10))
                hi = mid;
            else
                lo = mid + 1;
        }
        k = lo;
    }
    if (!shortest_k(a, k, digits, &e10)) return 0;
    fix_tie(a, k, digits, &e10);
    size_t n = strlen(digits);
    while (n > 1 && digits[n - 1] == '0') digits[--n] = 0;
    /* Rust's layout: the point after `e10 + 1` digits, zeros to fill, no exponent. */
    int point = e10 + 1;
    char tmp[400];
    size_t w = 0;
    w += (size_t)snprintf(tmp + w, sizeof tmp - w, "%s", sign);
    if (point <= 0) {
        tmp[w++] = '0';
        tmp[w++] = '.';
        for (int i = 0; i < -point; i++) tmp[w++] = '0';
        for (size_t i = 0; i < n; i++) tmp[w++] = digits[i];
    } else if ((size_t)point < n) {
        for (size_t i = 0; i < n; i++) {
            if (i == (size_t)point) tmp[w++] = '.';
            tmp[w++] = digits[i];
        }
    } else {
        for (size_t i = 0; i < n; i++) tmp[w++] = digits[i];
        for (size_t i = n; i < (size_t)point; i++) tmp[w++] = '0';
    }
    tmp[w] = 0;
    if (w + 1 > cap) return 0;
    memcpy(out, tmp, w + 1);
    return w;
}

size_t dyn_fmt_time(double t, char *out, size_t cap) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.12e", t);
    double r = strtod(buf, NULL);
    if (isnan(t) || isinf(t)) r = t;
    return dyn_fmt_f64(r, out, cap);
}

static int lower_eq(const char *s, const char *word) {
    for (; *s && *word; s++, word++) {
        char c = *s;
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != *word) return 0;
    }
    return *s == 0 && *word == 0;
}

int dyn_parse_f64(const char *s, double *out) {
    const char *p = s;
    int neg = 0;
    if (*p == '+' || *p == '-') neg = *p++ == '-';
    if (lower_eq(p, "inf") || lower_eq(p, "infinity")) {
        *out = neg ? -INFINITY : INFINITY;
        return 0;
    }
    if (lower_eq(p, "nan")) {
        *out = NAN;
        return 0;
    }
    int digits = 0;
    while (*p >= '0' && *p <= '9') p++, digits++;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') p++, digits++;
    }
    if (digits == 0) return 1;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        int ed = 0;
        while (*p >= '0' && *p <= '9') p++, ed++;
        if (ed == 0) return 1;
    }
    if (*p != 0) return 1;
    *out = strtod(s, NULL);
    return 0;
}

int dyn_parse_u64(const char *s, uint64_t *out) {
    const char *p = s;
    if (*p == '+') p++;
    if (*p == 0) return 1;
    uint64_t v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return 1;
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v))
            return 1;
    }
    *out = v;
    return 0;
}
