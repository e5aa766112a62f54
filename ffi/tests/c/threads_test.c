/*
 * threads_test: 4 threads share one PrunusModel, each with its own PrunusSession, and run
 * the same inputs in a different order; every output must equal, bit for bit, the output
 * of a single-threaded reference session. Also checks that the last-error message is per
 * thread.
 *
 *   threads_test MODEL.prunus [RUNS_PER_THREAD]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <prunus.h>

#define THREADS 4
#define INPUTS 3

static const PrunusModel *g_model;
static size_t g_in_len, g_out_len;
static float *g_inputs[INPUTS];    /* shared, read-only */
static float *g_expected[INPUTS];  /* reference outputs */
static int g_runs = 3;

typedef struct {
    int id;
    int mismatches;
    int errors;
} Worker;

static void *work(void *arg)
{
    Worker *w = arg;
    PrunusSession *session = NULL;
    if (prunus_session_new(g_model, NULL, &session) != PRUNUS_STATUS_OK) {
        fprintf(stderr, "thread %d: %s\n", w->id, prunus_last_error());
        w->errors++;
        return NULL;
    }
    /* A failure on this thread: its message must not leak to the other threads. */
    if (prunus_session_output(session, 0, NULL, NULL) != PRUNUS_STATUS_NULL_ARGUMENT ||
        strstr(prunus_last_error(), "'out_data'") == NULL)
        w->errors++;
    for (int r = 0; r < g_runs; r++) {
        for (int k = 0; k < INPUTS; k++) {
            int which = (k + w->id + r) % INPUTS;
            const float *inputs[] = {g_inputs[which]};
            size_t lens[] = {g_in_len};
            const float *out;
            size_t len;
            if (prunus_session_run(session, inputs, lens, 1) != PRUNUS_STATUS_OK ||
                prunus_session_output(session, 0, &out, &len) != PRUNUS_STATUS_OK || len != g_out_len) {
                fprintf(stderr, "thread %d: %s\n", w->id, prunus_last_error());
                w->errors++;
                continue;
            }
            if (strcmp(prunus_last_error(), "") != 0)
                w->errors++;
            if (memcmp(out, g_expected[which], len * sizeof *out) != 0)
                w->mismatches++;
        }
    }
    prunus_session_free(session);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s MODEL.prunus [RUNS_PER_THREAD]\n", argv[0]);
        return 2;
    }
    if (argc == 3)
        g_runs = atoi(argv[2]);
    PrunusModel *model = NULL;
    PrunusTensorInfo in, out;
    if (prunus_model_open(argv[1], &model) != PRUNUS_STATUS_OK ||
        prunus_model_input_info(model, 0, &in) != PRUNUS_STATUS_OK ||
        prunus_model_output_info(model, 0, &out) != PRUNUS_STATUS_OK) {
        fprintf(stderr, "%s\n", prunus_last_error());
        return 1;
    }
    g_model = model;
    g_in_len = in.element_count;
    g_out_len = out.element_count;

    /* References from one session on the main thread. */
    PrunusSession *reference = NULL;
    if (prunus_session_new(model, NULL, &reference) != PRUNUS_STATUS_OK) {
        fprintf(stderr, "%s\n", prunus_last_error());
        return 1;
    }
    for (int k = 0; k < INPUTS; k++) {
        g_inputs[k] = malloc(g_in_len * sizeof(float));
        g_expected[k] = malloc(g_out_len * sizeof(float));
        unsigned state = 12345u + 977u * (unsigned)k;
        for (size_t i = 0; i < g_in_len; i++) {
            state = state * 1103515245u + 12345u;
            g_inputs[k][i] = (float)((state >> 16) & 0x7fff) / 16384.0f - 1.0f;
        }
        const float *inputs[] = {g_inputs[k]};
        size_t lens[] = {g_in_len};
        float *outputs[] = {g_expected[k]};
        size_t out_lens[] = {g_out_len};
        if (prunus_session_run_into(reference, inputs, lens, 1, outputs, out_lens, 1) != PRUNUS_STATUS_OK) {
            fprintf(stderr, "%s\n", prunus_last_error());
            return 1;
        }
    }
    prunus_session_free(reference);
    /* Distinct inputs must give distinct outputs, or the comparison proves little. */
    int distinct = memcmp(g_expected[0], g_expected[1], g_out_len * sizeof(float)) != 0;

    Worker workers[THREADS];
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++) {
        workers[t] = (Worker){t, 0, 0};
        if (pthread_create(&threads[t], NULL, work, &workers[t]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    int passed = 0, failed = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        int ok = workers[t].mismatches == 0 && workers[t].errors == 0;
        printf("thread %d: %d runs, %d mismatches, %d errors\n", t, g_runs * INPUTS,
               workers[t].mismatches, workers[t].errors);
        ok ? passed++ : failed++;
    }
    /* The main thread's last error is untouched by the workers' failures. */
    if (strcmp(prunus_last_error(), "") != 0 || !distinct) {
        fprintf(stderr, "main thread message '%s', distinct outputs %d\n", prunus_last_error(), distinct);
        failed++;
    }
    for (int k = 0; k < INPUTS; k++) {
        free(g_inputs[k]);
        free(g_expected[k]);
    }
    prunus_model_free(model);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
