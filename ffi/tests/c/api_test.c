/*
 * api_test: calls every exported function of libprunus with NULL arguments, wrong sizes,
 * wrong shapes, corrupt and truncated files, and checks each status and message, that
 * outputs are untouched on failure, and that the messages are empty after a success.
 * ffi/test.sh runs it under valgrind memcheck.
 *
 *   api_test MODEL.prunus SCRATCH_DIR   run the tests (MODEL: one input [1, 3, H, W])
 *   api_test --list                     print the functions it covers, one per line;
 *                                       ffi/test.sh compares them with nm -D of the library
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <prunus.h>

/* Every exported function, and whether a test called it (CALL marks it). */
static struct {
    const char *name;
    int called;
} FUNCTIONS[] = {
    {"prunus_version", 0},           {"prunus_status_str", 0},
    {"prunus_last_error", 0},        {"prunus_model_open", 0},
    {"prunus_model_from_memory", 0}, {"prunus_model_free", 0},
    {"prunus_model_verify", 0},      {"prunus_model_input_count", 0},
    {"prunus_model_output_count", 0}, {"prunus_model_input_info", 0},
    {"prunus_model_output_info", 0}, {"prunus_options_new", 0},
    {"prunus_options_free", 0},      {"prunus_options_set_threads", 0},
    {"prunus_options_set_affinity", 0}, {"prunus_options_set_isa", 0},
    {"prunus_options_retain", 0},    {"prunus_session_new", 0},
    {"prunus_session_free", 0},      {"prunus_session_run", 0},
    {"prunus_session_run_into", 0},  {"prunus_session_output", 0},
    {"prunus_session_tensor", 0},
};
#define N_FUNCTIONS (sizeof FUNCTIONS / sizeof FUNCTIONS[0])

static int failures, checks;

static int mark(const char *name)
{
    for (size_t i = 0; i < N_FUNCTIONS; i++)
        if (strcmp(FUNCTIONS[i].name, name) == 0) {
            FUNCTIONS[i].called = 1;
            return 0;
        }
    fprintf(stderr, "FAIL: %s is not in FUNCTIONS\n", name);
    failures++;
    return 0;
}

/* CALL(f)(args) calls f and records that the test covered it. */
#define CALL(f) (mark(#f), f)

#define FAIL(...)                                                                          \
    do {                                                                                   \
        fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                               \
        fprintf(stderr, __VA_ARGS__);                                                      \
        fprintf(stderr, "\n");                                                             \
        failures++;                                                                        \
    } while (0)

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        checks++;                                                                          \
        if (!(cond))                                                                       \
            FAIL("%s", #cond);                                                             \
    } while (0)

/* Checks a status and this thread's message: empty after success, else non-empty and
   containing `needle` (if not NULL). */
static void expect(int line, const char *call, PrunusStatus got, PrunusStatus want, const char *needle)
{
    const char *message = CALL(prunus_last_error)();
    checks++;
    if (got != want) {
        fprintf(stderr, "FAIL line %d: %s returned %s (%d), expected %s: %s\n", line, call,
                prunus_status_str(got), (int)got, prunus_status_str(want), message);
        failures++;
    } else if (want == PRUNUS_STATUS_OK && message[0] != '\0') {
        fprintf(stderr, "FAIL line %d: %s succeeded but left message '%s'\n", line, call, message);
        failures++;
    } else if (want != PRUNUS_STATUS_OK && (message[0] == '\0' || (needle && !strstr(message, needle)))) {
        fprintf(stderr, "FAIL line %d: %s: message '%s' lacks '%s'\n", line, call, message,
                needle ? needle : "(anything)");
        failures++;
    }
}
#define EXPECT(expr, want, needle) expect(__LINE__, #expr, (expr), (want), (needle))

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    unsigned char *data = malloc(size > 0 ? (size_t)size : 1);
    if (data && fread(data, 1, (size_t)size, f) != (size_t)size) {
        free(data);
        data = NULL;
    }
    fclose(f);
    *len = (size_t)size;
    return data;
}

static void write_file(const char *path, const unsigned char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) {
        FAIL("cannot write %s", path);
    }
    if (f)
        fclose(f);
}

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Byte range of the weights section (kind 2) from the section table, or 0 on failure. */
static int weights_section(const unsigned char *file, size_t len, size_t *start, size_t *size)
{
    if (len < 32)
        return 0;
    uint32_t count = (uint32_t)(file[12] | file[13] << 8 | file[14] << 16 | (uint32_t)file[15] << 24);
    uint64_t table = le64(file + 16);
    for (uint32_t i = 0; i < count && table + 32 * (i + 1) <= len; i++) {
        const unsigned char *e = file + table + 32 * i;
        if (e[0] == 2) {
            *start = (size_t)le64(e + 8);
            *size = (size_t)le64(e + 16);
            return *start + *size <= len && *size > 0;
        }
    }
    return 0;
}

static void test_static_functions(void)
{
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", PRUNUS_VERSION_MAJOR, PRUNUS_VERSION_MINOR,
             PRUNUS_VERSION_PATCH);
    CHECK(strcmp(CALL(prunus_version)(), PRUNUS_VERSION_STRING) == 0);
    CHECK(strcmp(expected, PRUNUS_VERSION_STRING) == 0);
    CHECK(PRUNUS_VERSION_NUMBER == PRUNUS_VERSION_MAJOR * 10000 + PRUNUS_VERSION_MINOR * 100 + PRUNUS_VERSION_PATCH);
    CHECK(strcmp(CALL(prunus_status_str)(PRUNUS_STATUS_OK), "ok") == 0);
    for (int s = PRUNUS_STATUS_NULL_ARGUMENT; s <= PRUNUS_STATUS_PANIC; s++) {
        const char *text = CALL(prunus_status_str)(s);
        CHECK(text && text[0] && strcmp(text, "unknown status") != 0);
        CHECK(strcmp(text, prunus_status_str(s - 1)) != 0);
    }
    CHECK(strcmp(CALL(prunus_status_str)(-1), "unknown status") == 0);
    CHECK(strcmp(CALL(prunus_status_str)(PRUNUS_STATUS_PANIC + 1), "unknown status") == 0);
    CHECK(strcmp(CALL(prunus_last_error)(), "") == 0);
}

/* Corrupt, truncated, missing and misaligned models. */
static void test_bad_models(const char *model_path, const char *dir)
{
    size_t len;
    unsigned char *file = read_file(model_path, &len);
    CHECK(file && len > 64);
    if (!file)
        return;
    char path[4096];
    PrunusModel *const sentinel = (PrunusModel *)&failures; /* never dereferenced */
    PrunusModel *model = sentinel;

    EXPECT(CALL(prunus_model_open)(NULL, &model), PRUNUS_STATUS_NULL_ARGUMENT, "'path'");
    EXPECT(CALL(prunus_model_open)(model_path, NULL), PRUNUS_STATUS_NULL_ARGUMENT, "'out_model'");
    EXPECT(CALL(prunus_model_open)("/nonexistent/model.prunus", &model), PRUNUS_STATUS_IO,
           "/nonexistent/model.prunus");
    EXPECT(CALL(prunus_model_open)(dir, &model), PRUNUS_STATUS_IO, dir);

    snprintf(path, sizeof path, "%s/empty.prunus", dir);
    write_file(path, file, 0);
    EXPECT(CALL(prunus_model_open)(path, &model), PRUNUS_STATUS_INVALID_MODEL, "truncated");
    snprintf(path, sizeof path, "%s/truncated-header.prunus", dir);
    write_file(path, file, 20);
    EXPECT(CALL(prunus_model_open)(path, &model), PRUNUS_STATUS_INVALID_MODEL, "truncated");
    snprintf(path, sizeof path, "%s/truncated.prunus", dir);
    write_file(path, file, len / 2);
    EXPECT(CALL(prunus_model_open)(path, &model), PRUNUS_STATUS_INVALID_MODEL, NULL);
    snprintf(path, sizeof path, "%s/truncated-last-byte.prunus", dir);
    write_file(path, file, len - 1);
    EXPECT(CALL(prunus_model_open)(path, &model), PRUNUS_STATUS_INVALID_MODEL, NULL);

    unsigned char saved = file[0];
    file[0] = 'X';
    snprintf(path, sizeof path, "%s/bad-magic.prunus", dir);
    write_file(path, file, len);
    EXPECT(CALL(prunus_model_open)(path, &model), PRUNUS_STATUS_INVALID_MODEL, "magic");
    file[0] = saved;
    saved = file[20];
    file[20] ^= 0x5a; /* section table offset: header checksum */
    snprintf(path, sizeof path, "%s/bad-header.prunus", dir);
    write_file(path, file, len);
    EXPECT(CALL(prunus_model_open)(path, &model), PRUNUS_STATUS_INVALID_MODEL, "checksum");
    file[20] = saved;
    CHECK(model == sentinel);

    /* From memory: NULL, misaligned, truncated. */
    EXPECT(CALL(prunus_model_from_memory)(NULL, len, &model), PRUNUS_STATUS_NULL_ARGUMENT, "'data'");
    EXPECT(CALL(prunus_model_from_memory)(file, len, NULL), PRUNUS_STATUS_NULL_ARGUMENT, "'out_model'");
    unsigned char *shifted = malloc(len + 1);
    memcpy(shifted + 1, file, len);
    EXPECT(CALL(prunus_model_from_memory)(shifted + 1, len, &model), PRUNUS_STATUS_INVALID_ARGUMENT, "aligned");
    free(shifted);
    EXPECT(CALL(prunus_model_from_memory)(file, 31, &model), PRUNUS_STATUS_INVALID_MODEL, "truncated");
    EXPECT(CALL(prunus_model_from_memory)(file, len - 64, &model), PRUNUS_STATUS_INVALID_MODEL, NULL);
    CHECK(model == sentinel);

    /* Corrupt weights open (only metadata is checked) but fail verification. */
    size_t start, size;
    CHECK(weights_section(file, len, &start, &size));
    if (weights_section(file, len, &start, &size)) {
        file[start + size / 2] ^= 0x01;
        EXPECT(CALL(prunus_model_from_memory)(file, len, &model), PRUNUS_STATUS_OK, NULL);
        EXPECT(CALL(prunus_model_verify)(model), PRUNUS_STATUS_INVALID_MODEL, "checksum");
        CALL(prunus_model_free)(model);
        file[start + size / 2] ^= 0x01;
    }
    EXPECT(CALL(prunus_model_verify)(NULL), PRUNUS_STATUS_NULL_ARGUMENT, "'model'");
    EXPECT(CALL(prunus_model_from_memory)(file, len, &model), PRUNUS_STATUS_OK, NULL);
    EXPECT(CALL(prunus_model_verify)(model), PRUNUS_STATUS_OK, NULL);
    CALL(prunus_model_free)(model);
    CALL(prunus_model_free)(NULL);
    free(file);
}

static void test_introspection(const PrunusModel *model, PrunusTensorInfo *in, PrunusTensorInfo *out)
{
    size_t count = 77;
    EXPECT(CALL(prunus_model_input_count)(NULL, &count), PRUNUS_STATUS_NULL_ARGUMENT, "'model'");
    EXPECT(CALL(prunus_model_input_count)(model, NULL), PRUNUS_STATUS_NULL_ARGUMENT, "'out_count'");
    EXPECT(CALL(prunus_model_output_count)(NULL, &count), PRUNUS_STATUS_NULL_ARGUMENT, "'model'");
    EXPECT(CALL(prunus_model_output_count)(model, NULL), PRUNUS_STATUS_NULL_ARGUMENT, "'out_count'");
    CHECK(count == 77);
    EXPECT(CALL(prunus_model_input_count)(model, &count), PRUNUS_STATUS_OK, NULL);
    CHECK(count == 1);
    EXPECT(CALL(prunus_model_output_count)(model, &count), PRUNUS_STATUS_OK, NULL);
    CHECK(count == 1);

    PrunusTensorInfo info;
    memset(&info, 0xab, sizeof info);
    PrunusTensorInfo before = info;
    EXPECT(CALL(prunus_model_input_info)(NULL, 0, &info), PRUNUS_STATUS_NULL_ARGUMENT, "'model'");
    EXPECT(CALL(prunus_model_input_info)(model, 0, NULL), PRUNUS_STATUS_NULL_ARGUMENT, "'out_info'");
    EXPECT(CALL(prunus_model_input_info)(model, 1, &info), PRUNUS_STATUS_NOT_FOUND, "1 input(s)");
    EXPECT(CALL(prunus_model_output_info)(NULL, 0, &info), PRUNUS_STATUS_NULL_ARGUMENT, "'model'");
    EXPECT(CALL(prunus_model_output_info)(model, 0, NULL), PRUNUS_STATUS_NULL_ARGUMENT, "'out_info'");
    EXPECT(CALL(prunus_model_output_info)(model, 5, &info), PRUNUS_STATUS_NOT_FOUND, "out of range");
    CHECK(memcmp(&info, &before, sizeof info) == 0);

    EXPECT(CALL(prunus_model_input_info)(model, 0, in), PRUNUS_STATUS_OK, NULL);
    EXPECT(CALL(prunus_model_output_info)(model, 0, out), PRUNUS_STATUS_OK, NULL);
    CHECK(in->rank == 4 && in->shape[0] == 1 && in->shape[1] == 3 && in->dtype == PRUNUS_DTYPE_F32);
    CHECK(in->element_count == in->shape[0] * in->shape[1] * in->shape[2] * in->shape[3]);
    CHECK(out->element_count > 1 && out->dtype == PRUNUS_DTYPE_F32 && strlen(out->name) > 0);
}

static void test_options(const PrunusModel *model)
{
    PrunusOptions *options = NULL;
    PrunusSession *session = (PrunusSession *)&failures;
    EXPECT(CALL(prunus_options_new)(NULL), PRUNUS_STATUS_NULL_ARGUMENT, "'out_options'");
    EXPECT(CALL(prunus_options_new)(&options), PRUNUS_STATUS_OK, NULL);
    EXPECT(CALL(prunus_options_set_threads)(NULL, 1), PRUNUS_STATUS_NULL_ARGUMENT, "'options'");
    EXPECT(CALL(prunus_options_set_threads)(options, 0), PRUNUS_STATUS_INVALID_ARGUMENT, "'threads'");
    EXPECT(CALL(prunus_options_set_threads)(options, PRUNUS_MAX_THREADS + 1), PRUNUS_STATUS_INVALID_ARGUMENT, "threads");
    EXPECT(CALL(prunus_options_set_threads)(options, 2), PRUNUS_STATUS_OK, NULL);
    EXPECT(CALL(prunus_options_set_affinity)(NULL, PRUNUS_AFFINITY_ANY), PRUNUS_STATUS_NULL_ARGUMENT, "'options'");
    EXPECT(CALL(prunus_options_set_affinity)(options, 3), PRUNUS_STATUS_INVALID_ARGUMENT, "affinity");
    EXPECT(CALL(prunus_options_set_affinity)(options, -1), PRUNUS_STATUS_INVALID_ARGUMENT, "affinity");
    EXPECT(CALL(prunus_options_set_affinity)(options, PRUNUS_AFFINITY_BIG), PRUNUS_STATUS_OK, NULL);
    EXPECT(CALL(prunus_options_set_isa)(NULL, "scalar"), PRUNUS_STATUS_NULL_ARGUMENT, "'options'");
    EXPECT(CALL(prunus_options_set_isa)(options, "sve9"), PRUNUS_STATUS_UNSUPPORTED, "scalar");
    EXPECT(CALL(prunus_options_set_isa)(options, "\xff\xfe"), PRUNUS_STATUS_INVALID_ARGUMENT, "UTF-8");
    EXPECT(CALL(prunus_options_set_isa)(options, "Scalar"), PRUNUS_STATUS_OK, NULL);
    EXPECT(CALL(prunus_options_set_isa)(options, NULL), PRUNUS_STATUS_OK, NULL);
    EXPECT(CALL(prunus_options_retain)(NULL, "x"), PRUNUS_STATUS_NULL_ARGUMENT, "'options'");
    EXPECT(CALL(prunus_options_retain)(options, NULL), PRUNUS_STATUS_NULL_ARGUMENT, "'tensor_name'");
    EXPECT(CALL(prunus_options_retain)(options, "no_such_tensor"), PRUNUS_STATUS_OK, NULL);

    EXPECT(CALL(prunus_session_new)(NULL, options, &session), PRUNUS_STATUS_NULL_ARGUMENT, "'model'");
    EXPECT(CALL(prunus_session_new)(model, options, NULL), PRUNUS_STATUS_NULL_ARGUMENT, "'out_session'");
    EXPECT(CALL(prunus_session_new)(model, options, &session), PRUNUS_STATUS_NOT_FOUND, "no_such_tensor");
    CHECK(session == (PrunusSession *)&failures);
    CALL(prunus_options_free)(options);
    CALL(prunus_options_free)(NULL);
    CALL(prunus_session_free)(NULL);
}

static void test_sessions(const PrunusModel *model, const PrunusTensorInfo *in, const PrunusTensorInfo *out)
{
    size_t n_in = in->element_count, n_out = out->element_count;
    float *input = malloc((n_in + 1) * sizeof *input);
    float *result = malloc((n_out + 1) * sizeof *result);
    for (size_t i = 0; i < n_in + 1; i++)
        input[i] = (float)((i * 7919) % 255) / 255.0f - 0.5f;

    PrunusOptions *options = NULL;
    PrunusSession *session = NULL;
    EXPECT(CALL(prunus_options_new)(&options), PRUNUS_STATUS_OK, NULL);
    EXPECT(CALL(prunus_options_retain)(options, in->name), PRUNUS_STATUS_OK, NULL);
    EXPECT(CALL(prunus_session_new)(model, options, &session), PRUNUS_STATUS_OK, NULL);
    CALL(prunus_options_free)(options);

    const float *data = NULL;
    size_t len = 0;
    const float *inputs[] = {input}, *null_inputs[] = {NULL}, *misaligned[] = {(const float *)((const char *)input + 1)};
    size_t lens[] = {n_in}, short_lens[] = {n_in - 1}, long_lens[] = {n_in + 1};

    /* Outputs before any run. */
    EXPECT(CALL(prunus_session_output)(session, 0, &data, &len), PRUNUS_STATUS_NOT_RUN, "run");
    EXPECT(CALL(prunus_session_tensor)(session, out->name, &data, &len), PRUNUS_STATUS_NOT_RUN, NULL);
    CHECK(data == NULL && len == 0);

    /* Wrong runs. */
    EXPECT(CALL(prunus_session_run)(NULL, inputs, lens, 1), PRUNUS_STATUS_NULL_ARGUMENT, "'session'");
    EXPECT(CALL(prunus_session_run)(session, NULL, lens, 1), PRUNUS_STATUS_NULL_ARGUMENT, "'inputs'");
    EXPECT(CALL(prunus_session_run)(session, inputs, NULL, 1), PRUNUS_STATUS_NULL_ARGUMENT, "'input_lens'");
    EXPECT(CALL(prunus_session_run)(session, null_inputs, lens, 1), PRUNUS_STATUS_NULL_ARGUMENT, "'inputs[0]'");
    EXPECT(CALL(prunus_session_run)(session, misaligned, lens, 1), PRUNUS_STATUS_INVALID_ARGUMENT, "aligned");
    EXPECT(CALL(prunus_session_run)(session, inputs, lens, 0), PRUNUS_STATUS_SHAPE_MISMATCH, "1 input(s), 0 given");
    EXPECT(CALL(prunus_session_run)(session, inputs, lens, 2), PRUNUS_STATUS_SHAPE_MISMATCH, "1 input(s), 2 given");
    EXPECT(CALL(prunus_session_run)(session, inputs, short_lens, 1), PRUNUS_STATUS_SHAPE_MISMATCH, "needs");
    EXPECT(CALL(prunus_session_run)(session, inputs, long_lens, 1), PRUNUS_STATUS_SHAPE_MISMATCH, in->name);

    /* A good run, then outputs by index and by name. */
    EXPECT(CALL(prunus_session_run)(session, inputs, lens, 1), PRUNUS_STATUS_OK, NULL);
    EXPECT(CALL(prunus_session_output)(NULL, 0, &data, &len), PRUNUS_STATUS_NULL_ARGUMENT, "'session'");
    EXPECT(CALL(prunus_session_output)(session, 0, NULL, &len), PRUNUS_STATUS_NULL_ARGUMENT, "'out_data'");
    EXPECT(CALL(prunus_session_output)(session, 0, &data, NULL), PRUNUS_STATUS_NULL_ARGUMENT, "'out_len'");
    EXPECT(CALL(prunus_session_output)(session, 1, &data, &len), PRUNUS_STATUS_NOT_FOUND, "1 output(s)");
    CHECK(data == NULL && len == 0);
    EXPECT(CALL(prunus_session_output)(session, 0, &data, &len), PRUNUS_STATUS_OK, NULL);
    CHECK(data != NULL && len == n_out);
    float *first = malloc(n_out * sizeof *first);
    memcpy(first, data, n_out * sizeof *first);

    const float *tensor = NULL;
    size_t tensor_len = 0;
    EXPECT(CALL(prunus_session_tensor)(NULL, out->name, &tensor, &tensor_len), PRUNUS_STATUS_NULL_ARGUMENT, "'session'");
    EXPECT(CALL(prunus_session_tensor)(session, NULL, &tensor, &tensor_len), PRUNUS_STATUS_NULL_ARGUMENT, "'tensor_name'");
    EXPECT(CALL(prunus_session_tensor)(session, out->name, NULL, &tensor_len), PRUNUS_STATUS_NULL_ARGUMENT, "'out_data'");
    EXPECT(CALL(prunus_session_tensor)(session, out->name, &tensor, NULL), PRUNUS_STATUS_NULL_ARGUMENT, "'out_len'");
    EXPECT(CALL(prunus_session_tensor)(session, "no such tensor", &tensor, &tensor_len), PRUNUS_STATUS_NOT_FOUND, "no such tensor");
    EXPECT(CALL(prunus_session_tensor)(session, "\xff", &tensor, &tensor_len), PRUNUS_STATUS_INVALID_ARGUMENT, "UTF-8");
    CHECK(tensor == NULL && tensor_len == 0);
    EXPECT(CALL(prunus_session_tensor)(session, out->name, &tensor, &tensor_len), PRUNUS_STATUS_OK, NULL);
    CHECK(tensor_len == n_out && memcmp(tensor, first, n_out * sizeof *first) == 0);
    /* The retained input keeps the values that were run. */
    EXPECT(CALL(prunus_session_tensor)(session, in->name, &tensor, &tensor_len), PRUNUS_STATUS_OK, NULL);
    CHECK(tensor_len == n_in && memcmp(tensor, input, n_in * sizeof *input) == 0);

    /* run_into: every buffer is checked before running and written only on success. */
    float *outputs[] = {result}, *null_outputs[] = {NULL};
    size_t out_lens[] = {n_out}, wrong_out[] = {n_out + 1};
    for (size_t i = 0; i < n_out + 1; i++)
        result[i] = 12345.0f;
    EXPECT(CALL(prunus_session_run_into)(NULL, inputs, lens, 1, outputs, out_lens, 1), PRUNUS_STATUS_NULL_ARGUMENT, "'session'");
    EXPECT(CALL(prunus_session_run_into)(session, inputs, lens, 1, NULL, out_lens, 1), PRUNUS_STATUS_NULL_ARGUMENT, "'outputs'");
    EXPECT(CALL(prunus_session_run_into)(session, inputs, lens, 1, outputs, NULL, 1), PRUNUS_STATUS_NULL_ARGUMENT, "'output_lens'");
    EXPECT(CALL(prunus_session_run_into)(session, inputs, lens, 1, null_outputs, out_lens, 1), PRUNUS_STATUS_NULL_ARGUMENT, "'outputs[0]'");
    EXPECT(CALL(prunus_session_run_into)(session, inputs, lens, 1, outputs, wrong_out, 1), PRUNUS_STATUS_SHAPE_MISMATCH, "output_lens[0]");
    EXPECT(CALL(prunus_session_run_into)(session, inputs, lens, 1, outputs, out_lens, 0), PRUNUS_STATUS_SHAPE_MISMATCH, "1 output(s), 0 given");
    EXPECT(CALL(prunus_session_run_into)(session, inputs, short_lens, 1, outputs, out_lens, 1), PRUNUS_STATUS_SHAPE_MISMATCH, "needs");
    for (size_t i = 0; i < n_out + 1; i++)
        CHECK(result[i] == 12345.0f);
    /* The failed runs above hide the previous outputs. */
    EXPECT(CALL(prunus_session_output)(session, 0, &data, &len), PRUNUS_STATUS_NOT_RUN, NULL);
    EXPECT(CALL(prunus_session_run_into)(session, inputs, lens, 1, outputs, out_lens, 1), PRUNUS_STATUS_OK, NULL);
    CHECK(memcmp(result, first, n_out * sizeof *first) == 0 && result[n_out] == 12345.0f);
    EXPECT(CALL(prunus_session_output)(session, 0, &data, &len), PRUNUS_STATUS_OK, NULL);
    CHECK(memcmp(data, first, n_out * sizeof *first) == 0);

    /* A second session of the same model gives the same output. */
    PrunusSession *other = NULL;
    EXPECT(CALL(prunus_session_new)(model, NULL, &other), PRUNUS_STATUS_OK, NULL);
    EXPECT(CALL(prunus_session_run)(other, inputs, lens, 1), PRUNUS_STATUS_OK, NULL);
    EXPECT(CALL(prunus_session_output)(other, 0, &data, &len), PRUNUS_STATUS_OK, NULL);
    CHECK(len == n_out && memcmp(data, first, n_out * sizeof *first) == 0);
    CALL(prunus_session_free)(other);

    CALL(prunus_session_free)(session);
    free(first);
    free(input);
    free(result);
}

/* Sessions keep their model alive after prunus_model_free. */
static void test_lifetimes(const char *model_path, const PrunusTensorInfo *in)
{
    PrunusModel *model = NULL;
    PrunusSession *session = NULL;
    EXPECT(CALL(prunus_model_open)(model_path, &model), PRUNUS_STATUS_OK, NULL);
    EXPECT(CALL(prunus_session_new)(model, NULL, &session), PRUNUS_STATUS_OK, NULL);
    CALL(prunus_model_free)(model);
    float *input = calloc(in->element_count, sizeof *input);
    const float *inputs[] = {input};
    size_t lens[] = {in->element_count};
    EXPECT(CALL(prunus_session_run)(session, inputs, lens, 1), PRUNUS_STATUS_OK, NULL);
    CALL(prunus_session_free)(session);
    free(input);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < N_FUNCTIONS; i++)
            printf("%s\n", FUNCTIONS[i].name);
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL.prunus SCRATCH_DIR | --list\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1], *dir = argv[2];
    PrunusTensorInfo in, out;
    PrunusModel *model = NULL;

    test_static_functions();
    test_bad_models(model_path, dir);
    EXPECT(CALL(prunus_model_open)(model_path, &model), PRUNUS_STATUS_OK, NULL);
    if (!model)
        return 1;
    test_introspection(model, &in, &out);
    test_options(model);
    test_sessions(model, &in, &out);
    test_lifetimes(model_path, &in);
    CALL(prunus_model_free)(model);

    for (size_t i = 0; i < N_FUNCTIONS; i++)
        if (!FUNCTIONS[i].called)
            FAIL("%s was never called", FUNCTIONS[i].name);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
