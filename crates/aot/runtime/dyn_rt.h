/* The dyn ahead-of-time runtime: what a compiled model needs besides its generated code.
 *
 * `dyn build` compiles rt.c, and main.c (executables) or lib.c (libraries), once per C
 * compiler (they are cached), and links them with a generated `model.c` that holds the
 * model's tables (`DYN_MODEL`) and the object files Cranelift emitted for the model:
 *
 *   dyn_gen_init(x, p, s, flags, over, inputs, io)     initial params, states, signals, flags
 *   dyn_gen_run(x, p, s, work, rec, io)                the run loop, recording the run's columns
 *   dyn_gen_run_stream(...)                            the same, reading the input stream
 *   dyn_gen_step(x, p, s, work, rec, io)               (libraries) the run loop, recording nothing
 *
 * The runtime provides what that code calls: the math shims (`dyn_exp`, …, `dyn_randn`)
 * with the arithmetic of the Rust shims of crates/jit/src/shims.rs, and the noise
 * generator of crates/ir/src/numeric.rs. Everything here must agree with `dyn run` to the
 * bit: it is compiled with -ffp-contract=off (no fused multiply-adds). */
#ifndef DYN_RT_H
#define DYN_RT_H

#include <stddef.h>
#include <stdint.h>

/* Integration methods, as `dyn_interp::run::Method`. */
enum { DYN_EULER = 0, DYN_RK4 = 1, DYN_RK45 = 2 };

typedef void (*dyn_driver_fn)(double *x, const double *p, double *s, double *work, double *rec,
                              double *io);
typedef void (*dyn_init_fn)(double *x, double *p, double *s, double *flags, const double *over,
                            const double *inputs, double *io);

/* Everything the runtime knows of a model: sizes, names, slots and the run block. */
typedef struct {
    const char *system;             /* the system's name */
    dyn_init_fn init;               /* dyn_gen_init */
    dyn_driver_fn run;              /* dyn_gen_run (executables) or dyn_gen_step (libraries) */
    dyn_driver_fn run_stream;       /* dyn_gen_run_stream, or NULL (no inputs, or a library) */
    int discrete;                   /* 1: discrete (or stateless) time; 0: continuous */
    int method;                     /* DYN_EULER, DYN_RK4 or DYN_RK45 */
    int noisy;                      /* `randn()` in a `der`/`next` (Euler–Maruyama scaling) */
    size_t n_state, n_param, n_signal, n_events;
    size_t scratch;                 /* words of scratch memory for tensor temporaries */
    size_t work_buffers;            /* state-sized scratch buffers of the driver */
    /* io words (byte offsets / 8) */
    size_t io_words, io_count, io_every, io_dt, io_rows, io_bad_t, io_bad_slot, io_start,
        io_t0, io_rtol, io_atol, io_h, io_rng, io_scale, io_stream, io_scratch, io_total;
    /* the run block (and dyn run's defaults) */
    int has_until;
    double until;
    int has_steps;
    uint64_t steps;
    double dt, rtol, atol;
    int has_every;
    double every;
    uint64_t seed;
    size_t n_block_params;
    const char *const *block_param_paths;
    const double *block_param_values;
    /* the recorded columns of the executable */
    size_t n_rec;
    const char *const *rec_names;
    const unsigned char *rec_kind;  /* 0 = state slot, 1 = signal slot */
    const size_t *rec_slot;
    /* params: path, first slot, number of slots */
    size_t n_params;
    const char *const *param_paths;
    const size_t *param_slot;
    const size_t *param_len;
    /* the root's inputs (tensors expanded to `u[i]`) and their signal slots */
    size_t n_inputs;
    const char *const *input_names;
    const size_t *input_slot;
    /* the root's outputs (expanded) and their signal slots */
    size_t n_outputs;
    const char *const *output_names;
    const size_t *output_slot;
    /* every state slot's hierarchical name */
    const char *const *state_names;
    /* every recordable name: kind 0 = state slot, 1 = signal slot */
    size_t n_probes;
    const char *const *probe_names;
    const unsigned char *probe_kind;
    const size_t *probe_slot;
    /* diagnostic codes */
    const char *code_not_finite, *code_bad_param, *code_bad_run, *code_bad_input;
} dyn_model_info;

/* The model's tables, in the generated model.c. */
extern const dyn_model_info DYN_MODEL;

/* The generator of `randn()`: xoshiro256++ (crates/ir/src/numeric.rs). */
typedef struct {
    uint64_t s[4];
} dyn_noise;


/* rt.c */
void dyn_noise_seed(dyn_noise *g, uint64_t seed);
double dyn_noise_normal(dyn_noise *g);
/* Writes `v` as Rust's `Display` for f64 does (shortest round-trip digits, no exponent). */
size_t dyn_fmt_f64(double v, char *out, size_t cap);
/* Writes a recorded time as `dyn run` does: rounded to 13 significant digits, then shortest. */
size_t dyn_fmt_time(double t, char *out, size_t cap);
/* Parses a number as Rust's `str::parse::<f64>` does; 0 on success. */
int dyn_parse_f64(const char *s, double *out);
/* Parses an unsigned integer as Rust's `str::parse::<u64>` does; 0 on success. */
int dyn_parse_u64(const char *s, uint64_t *out);
/* Stores a pointer in an io word (the generated code reads it as an i64). */
void dyn_io_ptr(double *io, size_t word, const void *ptr);
void dyn_io_u64(double *io, size_t word, uint64_t v);
uint64_t dyn_io_get_u64(const double *io, size_t word);

#endif
