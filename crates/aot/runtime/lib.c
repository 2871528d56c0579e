/* The dyn ahead-of-time runtime, shared libraries: the API of api.h over the generated
 * init and step functions and the model's tables (`DYN_MODEL`). */
#include "dyn_rt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

#define EXPORT __attribute__((visibility("default")))


static const dyn_model_info *M = &DYN_MODEL;

struct dyn_model {
    double *x, *p, *s, *work, *flags, *over, *inputs, *scratch, *io;
    double rec[1];
    dyn_noise rng;
    uint64_t seed;
    double dt;
    uint64_t done; /* steps (records of one step) done since t = 0 */
    double t;
    int failed;
    char err[1024];
};

static void *zalloc(size_t n) { return calloc(n ? n : 1, sizeof(double)); }

static void set_err(dyn_model *m, const char *msg) {
    snprintf(m->err, sizeof m->err, "%s", msg);
}

EXPORT const char *dyn_model_system(void) { return M->system; }
EXPORT int dyn_model_discrete(void) { return M->discrete; }

EXPORT int dyn_model_reset(dyn_model *m) {
    if (!m) return 1;
    m->err[0] = 0;
    m->failed = 0;
    m->done = 0;
    m->t = 0.0;
    dyn_noise_seed(&m->rng, m->seed);
    memset(m->io, 0, M->io_words * sizeof(double));
    dyn_io_ptr(m->io, M->io_rng, &m->rng);
    m->io[M->io_scale] = 1.0;
    dyn_io_ptr(m->io, M->io_scratch, m->scratch);
    size_t nmax = M->n_state ? M->n_state : 1;
    memset(m->work, 0, (M->work_buffers * nmax + M->n_events) * sizeof(double));
    M->init(m->x, m->p, m->s, m->flags, m->over, m->inputs, m->io);
    double every = M->discrete ? 1.0 : m->dt;
    m->io[M->io_scale] = M->noisy && !M->discrete ? 1.0 / sqrt(m->dt) : 1.0;
    m->io[M->io_every] = every;
    m->io[M->io_dt] = M->discrete ? 0.0 : m->dt;
    m->io[M->io_h] = m->dt;
    m->io[M->io_rtol] = M->rtol;
    m->io[M->io_atol] = M->atol;
    return 0;
}

EXPORT dyn_model *dyn_model_new(void) {
    dyn_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    size_t nmax = M->n_state ? M->n_state : 1;
    m->x = zalloc(M->n_state);
    m->p = zalloc(M->n_param);
    m->s = zalloc(M->n_signal);
    m->work = zalloc(M->work_buffers * nmax + M->n_events);
    m->over = zalloc(2 * M->n_param);
    m->inputs = zalloc(M->n_inputs);
    m->scratch = zalloc(M->scratch);
    m->io = zalloc(M->io_words);
    if (!m->x || !m->p || !m->s || !m->work || !m->over || !m->inputs || !m->scratch || !m->io) {
        dyn_model_free(m);
        return NULL;
    }
    m->flags = m->work + M->work_buffers * nmax;
    m->seed = M->seed;
    m->dt = M->discrete ? 1.0 : M->dt;
    for (size_t i = 0; i < M->n_block_params; i++) {
        long k = dyn_model_param_index(M->block_param_paths[i]);
        if (k >= 0)
            for (size_t j = 0; j < M->param_len[k]; j++) {
                m->over[2 * (M->param_slot[k] + j)] = 1.0;
                m->over[2 * (M->param_slot[k] + j) + 1] = M->block_param_values[i];
            }
    }
    dyn_model_reset(m);
    return m;
}

EXPORT void dyn_model_free(dyn_model *m) {
    if (!m) return;
    free(m->x);
    free(m->p);
    free(m->s);
    free(m->work);
    free(m->over);
    free(m->inputs);
    free(m->scratch);
    free(m->io);
    free(m);
}

EXPORT const char *dyn_model_error(const dyn_model *m) { return m ? m->err : "no instance"; }

static long find(const char *const *names, size_t n, const char *name) {
    if (!name) return -1;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], name)) return (long)i;
    return -1;
}

static int bad_index(dyn_model *m, const char *what, size_t i, size_t n) {
    if (m) snprintf(m->err, sizeof m->err, "%s index %zu out of range (%zu %ss)", what, i, n, what);
    return 1;
}

static int unknown(dyn_model *m, const char *what, const char *name) {
    if (m) snprintf(m->err, sizeof m->err, "no %s named `%s`", what, name ? name : "(null)");
    return 1;
}

/* params */
EXPORT size_t dyn_model_param_count(void) { return M->n_params; }
EXPORT const char *dyn_model_param_name(size_t i) { return i < M->n_params ? M->param_paths[i] : NULL; }
EXPORT long dyn_model_param_index(const char *path) { return find(M->param_paths, M->n_params, path); }
EXPORT int dyn_model_set_param(dyn_model *m, size_t i, double v) {
    if (!m) return 1;
    if (i >= M->n_params) return bad_index(m, "param", i, M->n_params);
    for (size_t j = 0; j < M->param_len[i]; j++) {
        m->over[2 * (M->param_slot[i] + j)] = 1.0;
        m->over[2 * (M->param_slot[i] + j) + 1] = v;
    }
    return dyn_model_reset(m);
}
EXPORT int dyn_model_set_param_by_name(dyn_model *m, const char *path, double v) {
    long i = dyn_model_param_index(path);
    if (i < 0) return unknown(m, "param", path);
    return dyn_model_set_param(m, (size_t)i, v);
}
EXPORT double dyn_model_get_param(const dyn_model *m, size_t i) {
    if (!m || i >= M->n_params) return NAN;
    return m->p[M->param_slot[i]];
}

/* inputs */
EXPORT size_t dyn_model_input_count(void) { return M->n_inputs; }
EXPORT const char *dyn_model_input_name(size_t i) { return i < M->n_inputs ? M->input_names[i] : NULL; }
EXPORT long dyn_model_input_index(const char *name) { return find(M->input_names, M->n_inputs, name); }
EXPORT int dyn_model_set_input(dyn_model *m, size_t i, double v) {
    if (!m) return 1;
    if (i >= M->n_inputs) return bad_index(m, "input", i, M->n_inputs);
    m->inputs[i] = v;
    m->s[M->input_slot[i]] = v;
    return 0;
}
EXPORT int dyn_model_set_input_by_name(dyn_model *m, const char *name, double v) {
    long i = dyn_model_input_index(name);
    if (i < 0) return unknown(m, "input", name);
    return dyn_model_set_input(m, (size_t)i, v);
}

/* outputs */
EXPORT size_t dyn_model_output_count(void) { return M->n_outputs; }
EXPORT const char *dyn_model_output_name(size_t i) { return i < M->n_outputs ? M->output_names[i] : NULL; }
EXPORT long dyn_model_output_index(const char *name) { return find(M->output_names, M->n_outputs, name); }
EXPORT double dyn_model_get_output(const dyn_model *m, size_t i) {
    if (!m || i >= M->n_outputs) return NAN;
    return m->s[M->output_slot[i]];
}

/* states */
EXPORT size_t dyn_model_state_count(void) { return M->n_state; }
EXPORT const char *dyn_model_state_name(size_t i) { return i < M->n_state ? M->state_names[i] : NULL; }
EXPORT long dyn_model_state_index(const char *name) { return find(M->state_names, M->n_state, name); }
EXPORT double dyn_model_get_state(const dyn_model *m, size_t i) {
    if (!m || i >= M->n_state) return NAN;
    return m->x[i];
}
EXPORT int dyn_model_set_state(dyn_model *m, size_t i, double v) {
    if (!m) return 1;
    if (i >= M->n_state) return bad_index(m, "state", i, M->n_state);
    m->x[i] = v;
    return 0;
}

EXPORT int dyn_model_get(const dyn_model *m, const char *name, double *out) {
    long k = find(M->probe_names, M->n_probes, name);
    if (!m || k < 0 || !out) return 1;
    *out = M->probe_kind[k] ? m->s[M->probe_slot[k]] : m->x[M->probe_slot[k]];
    return 0;
}

/* time and settings */
EXPORT double dyn_model_time(const dyn_model *m) { return m ? m->t : NAN; }
EXPORT double dyn_model_dt(const dyn_model *m) { return m ? m->dt : NAN; }
EXPORT int dyn_model_set_dt(dyn_model *m, double dt) {
    if (!m) return 1;
    if (M->discrete) {
        set_err(m, "a discrete model steps by ticks: it has no dt");
        return 1;
    }
    if (!(dt > 0.0 && isfinite(dt))) {
        set_err(m, "the step dt must be positive and finite");
        return 1;
    }
    m->dt = dt;
    return dyn_model_reset(m);
}
EXPORT int dyn_model_set_seed(dyn_model *m, uint64_t seed) {
    if (!m) return 1;
    m->seed = seed;
    return dyn_model_reset(m);
}

/* stepping: records of one step each, continuing from the last one */
static int advance(dyn_model *m, uint64_t n) {
    if (m->failed) return 1;
    if (n == 0) return 0;
    uint64_t r0 = m->done + 1, r1 = m->done + n;
    if (r1 < r0) {
        set_err(m, "too many steps");
        return 1;
    }
    dyn_io_u64(m->io, M->io_count, r1);
    dyn_io_u64(m->io, M->io_start, r0);
    m->io[M->io_t0] = M->discrete ? 0.0 : (double)(r0 - 1) * m->dt;
    M->run(m->x, m->p, m->s, m->work, m->rec, m->io);
    int64_t bad = (int64_t)dyn_io_get_u64(m->io, M->io_bad_slot);
    if (bad >= 0) {
        /* rows written = records completed + 1 (the initial one) */
        uint64_t rows = dyn_io_get_u64(m->io, M->io_rows);
        m->done = rows > 0 ? rows - 1 : m->done;
        m->t = m->io[M->io_bad_t];
        m->failed = 1;
        char b1[512], b2[512];
        dyn_fmt_f64(m->io[M->io_bad_t], b1, sizeof b1);
        dyn_fmt_f64(m->x[bad], b2, sizeof b2);
        snprintf(m->err, sizeof m->err, "state `%s` became NaN or infinite at t = %s (last finite value: %s)",
                 M->state_names[bad], b1, b2);
        return 1;
    }
    m->done = r1;
    m->t = (double)r1 * (M->discrete ? 1.0 : m->dt);
    return 0;
}

EXPORT int dyn_model_step(dyn_model *m, uint64_t n) {
    if (!m) return 1;
    return advance(m, n);
}

EXPORT uint64_t dyn_model_run(dyn_model *m, uint64_t n, double *out) {
    if (!m) return 0;
    for (uint64_t k = 0; k < n; k++) {
        if (advance(m, 1)) return k;
        if (out)
            for (size_t j = 0; j < M->n_outputs; j++) out[k * M->n_outputs + j] = m->s[M->output_slot[j]];
    }
    return n;
}
