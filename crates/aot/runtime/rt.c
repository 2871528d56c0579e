/* The dyn ahead-of-time runtime, shared part: math shims, the noise generator, and the
 * number formats of `dyn run` (see dyn_rt.h). crates/aot/tests/runtime.rs checks each
 * against the Rust it mirrors. */
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

/* The shortest decimal that reads back as a positive finite double, and among those the
 * nearest, ties rounded up — what Rust's `Display` for f64 writes. The method is Ulf
 * Adams's Ryū (PLDI 2018): the bounds of the rounding interval, scaled by a power of ten
 * through 128-bit products with the tables of pow5.h, then digits removed while the bounds
 * still differ. Sets the digits (an integer) and the decimal exponent of its last digit. */
#include "pow5.h"

static uint32_t pow5bits(int32_t e) { return (uint32_t)(((uint32_t)e * 1217359) >> 19) + 1; }
static uint32_t log10_pow2(int32_t e) { return ((uint32_t)e * 78913) >> 18; }
static uint32_t log10_pow5(int32_t e) { return ((uint32_t)e * 732923) >> 20; }

static uint32_t pow5_factor(uint64_t v) {
    uint32_t n = 0;
    while (v % 5 == 0) {
        v /= 5;
        n++;
    }
    return n;
}

static uint64_t mul_shift(uint64_t m, const uint64_t *mul, int32_t j) {
    __uint128_t b0 = (__uint128_t)m * mul[0];
    __uint128_t b2 = (__uint128_t)m * mul[1];
    return (uint64_t)(((b0 >> 64) + b2) >> (j - 64));
}

static void shortest(double a, uint64_t *digits, int32_t *exp10) {
    uint64_t bits;
    memcpy(&bits, &a, 8);
    uint64_t mant = bits & ((1ULL << 52) - 1);
    uint32_t ebits = (uint32_t)(bits >> 52) & 0x7ff;
    int32_t e2;
    uint64_t m2;
    if (ebits == 0) {
        e2 = 1 - 1023 - 52 - 2;
        m2 = mant;
    } else {
        e2 = (int32_t)ebits - 1023 - 52 - 2;
        m2 = (1ULL << 52) | mant;
    }
    int accept = (m2 & 1) == 0; /* round-half-even reading includes the bounds */
    uint64_t mv = 4 * m2;
    uint32_t mm_shift = mant != 0 || ebits <= 1;
    uint64_t vr, vp, vm;
    int32_t e10;
    int vm_zeros = 0, vr_zeros = 0;
    if (e2 >= 0) {
        uint32_t q = log10_pow2(e2) - (e2 > 3);
        e10 = (int32_t)q;
        int32_t k = 125 + (int32_t)pow5bits((int32_t)q) - 1;
        int32_t i = -e2 + (int32_t)q + k;
        vr = mul_shift(mv, POW5_INV[q], i);
        vp = mul_shift(mv + 2, POW5_INV[q], i);
        vm = mul_shift(mv - 1 - mm_shift, POW5_INV[q], i);
        if (q <= 21) {
            if (mv % 5 == 0)
                vr_zeros = pow5_factor(mv) >= q;
            else if (accept)
                vm_zeros = pow5_factor(mv - 1 - mm_shift) >= q;
            else
                vp -= pow5_factor(mv + 2) >= q;
        }
    } else {
        uint32_t q = log10_pow5(-e2) - (-e2 > 1);
        e10 = (int32_t)q + e2;
        int32_t i = -e2 - (int32_t)q;
        int32_t k = (int32_t)pow5bits(i) - 125;
        int32_t j = (int32_t)q - k;
        vr = mul_shift(mv, POW5[i], j);
        vp = mul_shift(mv + 2, POW5[i], j);
        vm = mul_shift(mv - 1 - mm_shift, POW5[i], j);
        if (q <= 1) {
            vr_zeros = 1;
            if (accept)
                vm_zeros = mm_shift == 1;
            else
                --vp;
        } else if (q < 63) {
            vr_zeros = (mv & ((1ULL << q) - 1)) == 0;
        }
    }
    int32_t removed = 0;
    uint8_t last = 0;
    uint64_t out;
    if (vm_zeros || vr_zeros) {
        while (vp / 10 > vm / 10) {
            vm_zeros &= vm % 10 == 0;
            vr_zeros &= last == 0;
            last = (uint8_t)(vr % 10);
            vr /= 10;
            vp /= 10;
            vm /= 10;
            removed++;
        }
        if (vm_zeros) {
            while (vm % 10 == 0) {
                vr_zeros &= last == 0;
                last = (uint8_t)(vr % 10);
                vr /= 10;
                vp /= 10;
                vm /= 10;
                removed++;
            }
        }
        /* An exact tie (removed digits 5000…) rounds up, as Rust does. */
        out = vr + ((vr == vm && (!accept || !vm_zeros)) || last >= 5);
    } else {
        int up = 0;
        while (vp / 10 > vm / 10) {
            up = vr % 10 >= 5;
            vr /= 10;
            vp /= 10;
            vm /= 10;
            removed++;
        }
        out = vr + (vr == vm || up);
    }
    *digits = out;
    *exp10 = e10 + removed;
}

size_t dyn_fmt_f64(double v, char *out, size_t cap) {
    if (cap < 2) return 0;
    if (isnan(v)) return (size_t)snprintf(out, cap, "NaN");
    if (isinf(v)) return (size_t)snprintf(out, cap, v < 0 ? "-inf" : "inf");
    const char *sign = signbit(v) ? "-" : "";
    double a = fabs(v);
    if (a == 0.0) return (size_t)snprintf(out, cap, "%s0", sign);
    uint64_t d;
    int32_t e10;
    shortest(a, &d, &e10);
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)d);
    while (n > 1 && digits[n - 1] == '0') {
        digits[--n] = 0;
        e10++;
    }
    /* Rust's layout: the point after n + e10 digits, zeros to fill, no exponent. */
    int point = n + e10;
    char tmp[400];
    size_t w = 0;
    if (*sign) tmp[w++] = '-';
    if (point <= 0) {
        tmp[w++] = '0';
        tmp[w++] = '.';
        for (int i = 0; i < -point; i++) tmp[w++] = '0';
        for (int i = 0; i < n; i++) tmp[w++] = digits[i];
    } else if (point < n) {
        for (int i = 0; i < n; i++) {
            if (i == point) tmp[w++] = '.';
            tmp[w++] = digits[i];
        }
    } else {
        for (int i = 0; i < n; i++) tmp[w++] = digits[i];
        for (int i = n; i < point; i++) tmp[w++] = '0';
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
