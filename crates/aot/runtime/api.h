/* The C API of a model compiled with `dyn build --lib` (a shared library).
 *
 * An instance holds a model's params, state, signals and time. It starts as `dyn run`
 * starts the file's run block: the run block's params, step and seed. Every function is
 * safe to call on distinct instances from distinct threads.
 *
 *   dyn_model *m = dyn_model_new();
 *   dyn_model_set_param_by_name(m, "foxes.c", 2.5);   // like --param: restarts at t = 0
 *   dyn_model_step(m, 1000);                          // 1000 steps of dt
 *   double prey = dyn_model_get_output(m, 0);
 *   dyn_model_free(m);
 *
 * Indices run from 0 to the matching count - 1; a `*_index` function returns -1 for an
 * unknown name. Functions returning int return 0 on success and non-zero on failure, with
 * the reason in dyn_model_error(). Names are those of `dyn run --record`: `prey`,
 * `west.rabbits.r`, `cell[3].v`, tensors element by element as `u[2]`. */
#ifndef DYN_MODEL_API_H
#define DYN_MODEL_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An instance of the model. */
typedef struct dyn_model dyn_model;

/* A new instance at t = 0 (NULL if out of memory). */
dyn_model *dyn_model_new(void);
/* Frees an instance (NULL is allowed). */
void dyn_model_free(dyn_model *m);
/* The reason of the last failure on this instance ("" if none). */
const char *dyn_model_error(const dyn_model *m);

/* The name of the model's system. */
const char *dyn_model_system(void);
/* 1 for a discrete-time model (steps are ticks), 0 for a continuous one. */
int dyn_model_discrete(void);

/* Back to t = 0: params computed again (defaults, box arguments, overrides), initial
 * states, a fresh noise generator from the seed, the inputs kept. */
int dyn_model_reset(dyn_model *m);

/* Params by their paths (`foxes.c`). Setting one is an override, as `--param`: params
 * that depend on it follow, and the instance restarts at t = 0. */
size_t dyn_model_param_count(void);
const char *dyn_model_param_name(size_t i);
long dyn_model_param_index(const char *path);
int dyn_model_set_param(dyn_model *m, size_t i, double value);
int dyn_model_set_param_by_name(dyn_model *m, const char *path, double value);
/* The param's current value (its first slot for a tensor); NaN for a bad index. */
double dyn_model_get_param(const dyn_model *m, size_t i);

/* The root system's inputs: values held until set again (0 at first). */
size_t dyn_model_input_count(void);
const char *dyn_model_input_name(size_t i);
long dyn_model_input_index(const char *name);
int dyn_model_set_input(dyn_model *m, size_t i, double value);
int dyn_model_set_input_by_name(dyn_model *m, const char *name, double value);

/* The root system's outputs, as computed at the last step or reset (a new input or
 * state shows in them after the next step). */
size_t dyn_model_output_count(void);
const char *dyn_model_output_name(size_t i);
long dyn_model_output_index(const char *name);
double dyn_model_get_output(const dyn_model *m, size_t i);

/* Every state slot, by hierarchical name (`west.rabbits.r`). Setting one changes the
 * current state (the outputs follow at the next step). */
size_t dyn_model_state_count(void);
const char *dyn_model_state_name(size_t i);
long dyn_model_state_index(const char *name);
double dyn_model_get_state(const dyn_model *m, size_t i);
int dyn_model_set_state(dyn_model *m, size_t i, double value);

/* Any recordable name (a state, port or let of any box): 0 and the value in *out, or
 * non-zero for an unknown name. */
int dyn_model_get(const dyn_model *m, const char *name, double *out);

/* The current time: a time (continuous) or the number of ticks (discrete). */
double dyn_model_time(const dyn_model *m);
/* The step: dt of the continuous methods (the first step of rk45); 1 for discrete models. */
double dyn_model_dt(const dyn_model *m);
/* Sets dt (> 0, finite) and restarts at t = 0. */
int dyn_model_set_dt(dyn_model *m, double dt);
/* Sets the seed of `randn()` and restarts at t = 0. */
int dyn_model_set_seed(dyn_model *m, uint64_t seed);

/* Advances n steps of dt (n ticks for a discrete model). A state that becomes NaN or
 * infinite stops it (non-zero result; the state keeps its last finite value, the time is
 * the failure's) until the next reset. */
int dyn_model_step(dyn_model *m, uint64_t n);
/* Advances n steps, writing the outputs after each step into out (n × output_count
 * values, row by row). Returns the number of rows written: n, or fewer on failure. */
uint64_t dyn_model_run(dyn_model *m, uint64_t n, double *out);

#ifdef __cplusplus
}
#endif

#endif
