/* The dyn ahead-of-time runtime, executables: runs the model's `run` block as `dyn run`
 * does (same flags, same CSV to the byte, same errors), with the generated driver and the
 * model's tables (`DYN_MODEL`). */
#include "dyn_rt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static const dyn_model_info *M = &DYN_MODEL;

/* ---- output ---- */

static FILE *out_file;
static char *obuf;
static size_t olen, ocap = 1 << 16;
static int out_failed;

static void flush_out(void) {
    if (olen && fwrite(obuf, 1, olen, out_file) != olen) out_failed = errno ? errno : EIO;
    olen = 0;
}

static void put(const char *s, size_t n) {
    if (olen + n > ocap) flush_out();
    if (n > ocap) {
        if (fwrite(s, 1, n, out_file) != n) out_failed = errno ? errno : EIO;
        return;
    }
    memcpy(obuf + olen, s, n);
    olen += n;
}

static void puts_(const char *s) { put(s, strlen(s)); }

static void put_num(double v) {
    char b[512];
    size_t n = dyn_fmt_f64(v, b, sizeof b);
    put(b, n);
}

static const char *num(double v, char *b) {
    dyn_fmt_f64(v, b, 512);
    return b;
}

static void row(double t, const double *vals, size_t n) {
    char b[512];
    size_t k = dyn_fmt_time(t, b, sizeof b);
    put(b, k);
    for (size_t j = 0; j < n; j++) {
        put(",", 1);
        put_num(vals[j]);
    }
    put("\n", 1);
}

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "error: out of memory\n");
        exit(2);
    }
    return p;
}

/* ---- input streams (a CSV file with a header; every cell a number) ---- */

typedef struct {
    size_t ncols, nrows;
    char **columns;
    double *rows; /* nrows × ncols */
} stream;

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = 0;
    return s;
}

/* Splits one CSV record (quotes with "" escapes) into fields, in place. Returns the count. */
static size_t split(char *line, char ***fields, size_t *cap) {
    size_t n = 0;
    char *r = line, *w = line;
    for (;;) {
        if (n == *cap) {
            *cap = *cap ? *cap * 2 : 8;
            *fields = realloc(*fields, *cap * sizeof(char *));
            if (!*fields) {
                fprintf(stderr, "error: out of memory\n");
                exit(2);
            }
        }
        char *start = w;
        while (*r == ' ' || *r == '\t') *w++ = *r++;
        if (*r == '"') {
            w = start;
            r++;
            for (;;) {
                if (*r == 0) break;
                if (*r == '"') {
                    if (r[1] == '"') {
                        *w++ = '"';
                        r += 2;
                        continue;
                    }
                    r++;
                    break;
                }
                *w++ = *r++;
            }
            while (*r && *r != ',') *w++ = *r++;
        } else {
            while (*r && *r != ',') *w++ = *r++;
        }
        int more = *r == ',';
        if (more) r++;
        *w++ = 0;
        (*fields)[n++] = trim(start);
        if (!more) break;
    }
    return n;
}

static int read_stream(const char *path, stream *st, char *err, size_t errcap) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, errcap, "cannot read `%s`: %s (os error %d)", path, strerror(e), e);
        return 1;
    }
    char *line = NULL;
    size_t lcap = 0;
    char **fields = NULL;
    size_t fcap = 0, rcap = 0;
    long row_no = 0;
    int have_header = 0;
    st->ncols = st->nrows = 0;
    st->rows = NULL;
    for (;;) {
        /* getline-free reading of one line of any length */
        size_t len = 0;
        int c;
        while ((c = fgetc(f)) != EOF && c != '\n') {
            if (len + 2 > lcap) {
                lcap = lcap ? lcap * 2 : 256;
                line = realloc(line, lcap);
                if (!line) {
                    fprintf(stderr, "error: out of memory\n");
                    exit(2);
                }
            }
            line[len++] = (char)c;
        }
        if (c == EOF && len == 0) break;
        if (!line) {
            lcap = 256;
            line = xcalloc(lcap, 1);
        }
        line[len] = 0;
        if (len && line[len - 1] == '\r') line[--len] = 0;
        if (len == 0) continue; /* blank lines are skipped */
        size_t n = split(line, &fields, &fcap);
        if (!have_header) {
            st->ncols = n;
            st->columns = xcalloc(n, sizeof(char *));
            for (size_t j = 0; j < n; j++) st->columns[j] = strdup(fields[j]);
            have_header = 1;
            continue;
        }
        row_no++;
        if (n != st->ncols) {
            snprintf(err, errcap, "`%s` row %ld: found a record with %zu fields, but the header has %zu",
                     path, row_no, n, st->ncols);
            fclose(f);
            return 1;
        }
        if (st->nrows == rcap) {
            rcap = rcap ? rcap * 2 : 64;
            st->rows = realloc(st->rows, rcap * (st->ncols ? st->ncols : 1) * sizeof(double));
            if (!st->rows) {
                fprintf(stderr, "error: out of memory\n");
                exit(2);
            }
        }
        for (size_t j = 0; j < n; j++) {
            double v;
            if (dyn_parse_f64(fields[j], &v)) {
                snprintf(err, errcap, "`%s` row %ld, column `%s`: `%s` is not a number", path, row_no,
                         j < st->ncols ? st->columns[j] : "?", fields[j]);
                fclose(f);
                return 1;
            }
            st->rows[st->nrows * st->ncols + j] = v;
        }
        st->nrows++;
        if (c == EOF) break;
    }
    if (ferror(f)) {
        snprintf(err, errcap, "cannot read `%s`: %s", path, strerror(errno));
        fclose(f);
        return 1;
    }
    fclose(f);
    free(line);
    free(fields);
    if (!have_header) st->columns = NULL;
    return 0;
}

/* ---- arguments ---- */

static const char *prog = "model";

static void usage(FILE *f) {
    fprintf(f,
            "Runs the dyn model `%s` (compiled with `dyn build`); the trace is CSV.\n\n"
            "Usage: %s [OPTIONS]\n\n"
            "Options:\n"
            "      --until <T>           End time (continuous) or number of steps\n"
            "      --steps <N>           Number of steps\n"
            "      --dt <DT>             Step size (Euler, RK4) or first step (RK45)\n"
            "      --every <E>           Recording interval\n"
            "      --method <M>          The integration method compiled in (%s); others need `dyn build --method`\n"
            "      --param <PATH=VALUE>  Override a param, e.g. `--param foxes.c=2.5` (repeatable)\n"
            "      --seed <SEED>         Seed of `randn()`\n"
            "      --out <FILE>          Write the trace (CSV) to this file instead of stdout\n"
            "      --input <CSV>         Bind the root's inputs to the columns of this CSV file, one row a tick\n"
            "  -h, --help                Print help\n",
            M->system, prog, M->discrete ? "discrete time" : (const char *[]){"euler", "rk4", "rk45"}[M->method]);
}

static int bad_usage(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "error: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n\nUsage: %s [OPTIONS]\n\nFor more information, try '--help'.\n", prog);
    return 2;
}

static void report(const char *code, const char *msg) { fprintf(stderr, "error[%s]: %s\n", code, msg); }

int main(int argc, char **argv) {
    if (argc > 0 && argv[0]) {
        const char *slash = strrchr(argv[0], '/');
        prog = slash ? slash + 1 : argv[0];
    }
    int has_until = M->has_until, has_steps = M->has_steps, has_every = M->has_every;
    double until = M->until, dt = M->dt, every = M->every;
    uint64_t steps = M->steps, seed = M->seed;
    const char *out_path = NULL, *input_path = NULL;
    size_t np = M->n_block_params;
    const char **ppaths = xcalloc(np + (size_t)argc, sizeof(char *));
    double *pvals = xcalloc(np + (size_t)argc, sizeof(double));
    for (size_t i = 0; i < np; i++) {
        ppaths[i] = M->block_param_paths[i];
        pvals[i] = M->block_param_values[i];
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        static const char *const opts[] = {"--until", "--steps", "--dt",    "--every", "--param",
                                           "--seed",  "--out",   "--input", "--method"};
        const char *val = NULL;
        int which = -1;
        for (int k = 0; k < 9; k++) {
            size_t n = strlen(opts[k]);
            if (!strncmp(a, opts[k], n) && (a[n] == 0 || a[n] == '=')) {
                which = k;
                if (a[n] == '=') {
                    val = a + n + 1;
                } else if (i + 1 < argc) {
                    val = argv[++i];
                } else {
                    return bad_usage("a value is required for '%s <VALUE>' but none was supplied%s",
                                     opts[k], "");
                }
                break;
            }
        }
        if (which < 0) return bad_usage("unexpected argument '%s' found%s", a, "");
        double f;
        uint64_t u;
        switch (which) {
        case 0:
            if (dyn_parse_f64(val, &f)) return bad_usage("invalid value '%s' for '--until <T>': %s", val, "invalid float literal");
            until = f;
            has_until = 1;
            has_steps = 0;
            break;
        case 1:
            if (dyn_parse_u64(val, &u)) return bad_usage("invalid value '%s' for '--steps <N>': %s", val, "invalid digit found in string");
            steps = u;
            has_steps = 1;
            has_until = 0;
            break;
        case 2:
            if (dyn_parse_f64(val, &f)) return bad_usage("invalid value '%s' for '--dt <DT>': %s", val, "invalid float literal");
            dt = f;
            break;
        case 3:
            if (dyn_parse_f64(val, &f)) return bad_usage("invalid value '%s' for '--every <E>': %s", val, "invalid float literal");
            every = f;
            has_every = 1;
            break;
        case 4: {
            const char *eq = strchr(val, '=');
            if (!eq) {
                fprintf(stderr, "error: `--param %s`: expected PATH=VALUE, e.g. `--param foxes.c=2.5`\n", val);
                return 2;
            }
            char *key = strdup(val);
            key[eq - val] = 0;
            char *v = strdup(eq + 1);
            if (dyn_parse_f64(trim(v), &f)) {
                fprintf(stderr, "error: `--param %s`: `%s` is not a number\n", val, eq + 1);
                return 2;
            }
            ppaths[np] = trim(key);
            pvals[np] = f;
            np++;
            break;
        }
        case 5:
            if (dyn_parse_u64(val, &u)) return bad_usage("invalid value '%s' for '--seed <SEED>': %s", val, "invalid digit found in string");
            seed = u;
            break;
        case 6:
            out_path = val;
            break;
        case 7:
            input_path = val;
            break;
        case 8: {
            /* The method is compiled in: the same one is accepted, another needs a rebuild. */
            static const char *const methods[] = {"euler", "rk4", "rk45"};
            int k = 0;
            while (k < 3 && strcmp(val, methods[k])) k++;
            if (k == 3) {
                fprintf(stderr, "error: unknown method `%s`: use euler, rk4 or rk45\n", val);
                return 2;
            }
            if (k != M->method && !M->discrete) {
                fprintf(stderr,
                        "error: this program was compiled for `--method %s`; build it again with "
                        "`dyn build --method %s`\n",
                        methods[M->method], val);
                return 2;
            }
            break;
        }
        }
    }
    char msg[4096];
    stream st = {0};
    if (input_path && read_stream(input_path, &st, msg, sizeof msg)) {
        report(M->code_bad_input, msg);
        return 1;
    }
    if (out_path) {
        out_file = fopen(out_path, "wb");
        if (!out_file) {
            fprintf(stderr, "error: cannot write `%s`: %s\n", out_path, strerror(errno));
            return 2;
        }
    } else {
        out_file = stdout;
    }
    obuf = xcalloc(ocap, 1);
    int status = 0;
    /* header */
    puts_("t");
    for (size_t j = 0; j < M->n_rec; j++) {
        put(",", 1);
        puts_(M->rec_names[j]);
    }
    put("\n", 1);

    size_t n = M->n_state, nsig = M->n_signal;
    double *x = xcalloc(n, sizeof(double));
    double *p = xcalloc(M->n_param, sizeof(double));
    double *s = xcalloc(nsig, sizeof(double));
    size_t nmax = n ? n : 1;
    double *work = xcalloc(M->work_buffers * nmax + M->n_events, sizeof(double));
    double *flags = work + M->work_buffers * nmax;
    double *over = xcalloc(2 * (M->n_param ? M->n_param : 1), sizeof(double));
    double *scratch = xcalloc(M->scratch, sizeof(double));
    double *io = xcalloc(M->io_words, sizeof(double));
    double *ins = xcalloc(M->n_inputs, sizeof(double));
    size_t *cols = xcalloc(M->n_inputs, sizeof(size_t));
    double *table = NULL;
    dyn_noise rng;
    int discrete = M->discrete;
    uint64_t count = 0, rows = 0, total, emitted = 0;
    double scale = 1.0;

    /* Params: every path must name one; a later override of a path wins. */
    for (size_t i = 0; i < np; i++) {
        size_t k = 0;
        while (k < M->n_params && strcmp(M->param_paths[k], ppaths[i])) k++;
        if (k == M->n_params) {
            fprintf(stderr, "error[%s]: `--param %s` names no param\n  help: valid params: ",
                    M->code_bad_param, ppaths[i]);
            if (M->n_params == 0) fprintf(stderr, "none");
            for (size_t q = 0; q < M->n_params; q++)
                fprintf(stderr, "%s%s", q ? ", " : "", M->param_paths[q]);
            fprintf(stderr, "\n");
            status = 1;
            goto done;
        }
        for (size_t j = 0; j < M->param_len[k]; j++) {
            over[2 * (M->param_slot[k] + j)] = 1.0;
            over[2 * (M->param_slot[k] + j) + 1] = pvals[i];
        }
    }
    /* The stream's columns for the root's inputs, and its first row. */
    if (input_path) {
        for (size_t j = 0; j < M->n_inputs; j++) {
            size_t c = 0;
            while (c < st.ncols && strcmp(st.columns[c], M->input_names[j])) c++;
            if (c == st.ncols) {
                int w = snprintf(msg, sizeof msg, "the input stream has no column `%s` (its columns: ",
                                 M->input_names[j]);
                for (size_t q = 0; q < st.ncols && w < (int)sizeof msg; q++)
                    w += snprintf(msg + w, sizeof msg - (size_t)w, "%s%s", q ? ", " : "", st.columns[q]);
                if (w < (int)sizeof msg) snprintf(msg + w, sizeof msg - (size_t)w, ")");
                report(M->code_bad_input, msg);
                status = 1;
                goto done;
            }
            cols[j] = c;
        }
        if (st.nrows == 0) {
            report(M->code_bad_input,
                   "the input stream ended: the run needs row 1 but the file has 0 rows");
            status = 1;
            goto done;
        }
        table = xcalloc(st.nrows * (M->n_inputs ? M->n_inputs : 1), sizeof(double));
        for (size_t r = 0; r < st.nrows; r++)
            for (size_t j = 0; j < M->n_inputs; j++)
                table[r * M->n_inputs + j] = st.rows[r * st.ncols + cols[j]];
        for (size_t j = 0; j < M->n_inputs; j++) ins[j] = table[j];
    }
    dyn_noise_seed(&rng, seed);
    dyn_io_ptr(io, M->io_rng, &rng);
    io[M->io_scale] = 1.0;
    dyn_io_ptr(io, M->io_scratch, scratch);
    M->init(x, p, s, flags, over, ins, io);
    if (M->noisy && !discrete) scale = 1.0 / sqrt(dt);
    io[M->io_scale] = scale;
    dyn_io_ptr(io, M->io_stream, table);
    if (!discrete) {
        if (!(dt > 0.0 && isfinite(dt))) {
            char b[512];
            snprintf(msg, sizeof msg, "the step dt must be positive, not %s", num(dt, b));
            report(M->code_bad_run, msg);
            status = 1;
            goto done;
        }
        double u;
        if (has_until)
            u = until;
        else if (has_steps)
            u = (double)steps * dt;
        else {
            report(M->code_bad_run, "give `until T` (or `steps N`)");
            status = 1;
            goto done;
        }
        if (!has_every) every = dt;
        if (isnan(every) || every <= 0.0) {
            report(M->code_bad_run, "the recording interval must be positive");
            status = 1;
            goto done;
        }
        double c = floor(u / every + 1e-9);
        count = isnan(c) || c <= 0.0 ? 0 : c >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)c;
        rows = count + 1;
    } else {
        if (has_steps) {
            count = steps;
        } else if (has_until) {
            double r = round(until);
            count = isnan(r) || r <= 0.0 ? 0 : r >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)r;
        } else {
            report(M->code_bad_run, "give `steps N` (or `until T`) for a discrete system");
            status = 1;
            goto done;
        }
        uint64_t ev = 1;
        if (has_every) {
            double r = round(every);
            ev = isnan(r) || r <= 0.0 ? 0 : r >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)r;
            if (ev < 1) ev = 1;
        }
        every = (double)ev;
        rows = count / ev + 1;
        dt = 0.0;
    }
    size_t nrec = M->n_rec;
    if (input_path) {
        uint64_t need;
        if (!discrete) {
            double u = has_until ? until : (double)count * dt;
            double q = ceil(u / dt - 1e-9);
            need = isnan(q) || q <= 0.0 ? 0 : q >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)q;
        } else {
            need = count;
        }
        if ((uint64_t)st.nrows < need) {
            /* As dyn run: the initial row, then the error. */
            double *vals = xcalloc(nrec, sizeof(double));
            for (size_t j = 0; j < nrec; j++)
                vals[j] = M->rec_kind[j] ? s[M->rec_slot[j]] : x[M->rec_slot[j]];
            row(0.0, vals, nrec);
            char b[512];
            if (!discrete)
                snprintf(msg, sizeof msg,
                         "the input stream has %zu rows but the run takes %llu steps of dt = %s (one row a step)",
                         st.nrows, (unsigned long long)need, num(dt, b));
            else
                snprintf(msg, sizeof msg, "the input stream has %zu rows but the run takes %llu steps (one row a step)",
                         st.nrows, (unsigned long long)need);
            report(M->code_bad_input, msg);
            status = 1;
            goto done;
        }
    }
    io[M->io_h] = dt;
    io[M->io_rtol] = M->rtol;
    io[M->io_atol] = M->atol;
    io[M->io_every] = every;
    io[M->io_dt] = dt;
    /* The run in calls of a bounded number of records: rows go out as they come. */
    total = count;
    dyn_io_u64(io, M->io_total, total);
    uint64_t chunk = total / 100;
    uint64_t cap_rows = ((uint64_t)1 << 20) / (nrec ? nrec : 1);
    if (chunk > cap_rows) chunk = cap_rows;
    if (chunk < 1) chunk = 1;
    double *rec = xcalloc((size_t)(chunk + 2) * (nrec ? nrec : 1), sizeof(double));
    dyn_driver_fn drive = input_path && M->run_stream ? M->run_stream : M->run;
    uint64_t r0 = 1;
    for (;;) {
        uint64_t r1 = r0 + chunk - 1;
        if (r1 > total || r1 < r0) r1 = total;
        dyn_io_u64(io, M->io_count, r1);
        dyn_io_u64(io, M->io_start, r0);
        io[M->io_t0] = discrete ? 0.0 : (double)(r0 - 1) * every;
        /* The driver writes record row k at rec + k × columns: shift the buffer so that the
         * first row of this call lands at its start. */
        double *base = (double *)((uintptr_t)rec - (uintptr_t)(emitted * nrec * sizeof(double)));
        drive(x, p, s, work, base, io);
        uint64_t written = dyn_io_get_u64(io, M->io_rows);
        if (written > rows) written = rows;
        for (uint64_t r = emitted; r < written; r++)
            row((double)r * every, rec + (r - emitted) * nrec, nrec);
        emitted = written > emitted ? written : emitted;
        int64_t bad = (int64_t)dyn_io_get_u64(io, M->io_bad_slot);
        if (bad >= 0) {
            char b1[512], b2[512];
            fprintf(stderr,
                    "error[%s]: state `%s` became NaN or infinite at t = %s\n  last finite value: %s\n  help: the "
                    "trace up to this point was written; try a smaller step (--dt) or check the model's equations\n",
                    M->code_not_finite, M->state_names[bad], num(io[M->io_bad_t], b1), num(x[bad], b2));
            status = 1;
            goto done;
        }
        if (r1 >= total) break;
        r0 = r1 + 1;
    }
done:
    flush_out();
    if (out_file != stdout) {
        if (fclose(out_file) != 0 && !out_failed) out_failed = errno ? errno : EIO;
    } else if (fflush(stdout) != 0 && !out_failed) {
        out_failed = errno ? errno : EIO;
    }
    if (out_failed) {
        fprintf(stderr, "error: writing the trace: %s\n", strerror(out_failed));
        return 2;
    }
    return status;
}
