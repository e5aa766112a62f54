/*
 * classify: the whole Prunus C API flow on one page. Loads a model, reads a binary PPM
 * image, resizes it to the model's input, normalizes it (ImageNet mean and std), runs it
 * and prints the top classes, with their labels if a labels file (one per line) is given.
 *
 *   classify [-k N] MODEL.prunus IMAGE.ppm [LABELS.txt]
 *
 * The resize is bilinear (half-pixel centres) in 11-bit fixed point so that the C, C++ and
 * Rust examples compute the same input bytes; ffi/test.sh checks that they print the same.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <prunus.h>

/* An interleaved 8-bit RGB image. */
typedef struct {
    size_t width, height;
    unsigned char *rgb;
} Image;

/* Reads the next header token of a PPM file, skipping whitespace and # comments. */
static int ppm_token(FILE *f, char *token, size_t size)
{
    int c;
    size_t n = 0;
    for (;;) {
        c = fgetc(f);
        if (c == '#')
            while (c != '\n' && c != EOF)
                c = fgetc(f);
        if (c == EOF)
            return -1;
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
    }
    while (c != EOF && c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '#') {
        if (n + 1 >= size)
            return -1;
        token[n++] = (char)c;
        c = fgetc(f);
    }
    token[n] = '\0';
    /* The single whitespace after maxval is consumed here; a '#' cannot follow it. */
    return c == '#' ? -1 : 0;
}

/* Reads a binary (P6) PPM with maxval <= 255. Returns 0, or -1 with a message printed. */
static int read_ppm(const char *path, Image *image)
{
    char token[32];
    unsigned long dims[3];
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    int ok = ppm_token(f, token, sizeof token) == 0 && strcmp(token, "P6") == 0;
    for (int i = 0; ok && i < 3; i++) {
        char *end;
        ok = ppm_token(f, token, sizeof token) == 0;
        dims[i] = ok ? strtoul(token, &end, 10) : 0;
        ok = ok && *end == '\0' && dims[i] > 0 && dims[i] <= 65535;
    }
    if (!ok || dims[2] > 255) {
        fprintf(stderr, "%s: not a binary PPM (P6) with maxval <= 255\n", path);
        fclose(f);
        return -1;
    }
    image->width = dims[0];
    image->height = dims[1];
    size_t bytes = image->width * image->height * 3;
    image->rgb = malloc(bytes);
    if (!image->rgb || fread(image->rgb, 1, bytes, f) != bytes) {
        fprintf(stderr, "%s: truncated pixel data\n", path);
        free(image->rgb);
        image->rgb = NULL;
        fclose(f);
        return -1;
    }
    if (dims[2] != 255)
        for (size_t i = 0; i < bytes; i++)
            image->rgb[i] = (unsigned char)((image->rgb[i] * 255u + dims[2] / 2) / dims[2]);
    fclose(f);
    return 0;
}

/* Source position of destination index i along an axis, in 1/2048 pixels. */
static void axis_map(size_t in, size_t out, size_t i, size_t *i0, size_t *i1, uint32_t *frac)
{
    /* (i + 0.5) * in / out - 0.5, times 2048, rounded toward zero, clamped to the image. */
    int64_t fixed = ((int64_t)(2 * i + 1) * (int64_t)in - (int64_t)out) * 2048 / (2 * (int64_t)out);
    if (fixed < 0)
        fixed = 0;
    size_t base = (size_t)(fixed >> 11);
    *frac = (uint32_t)(fixed & 2047);
    if (base >= in - 1) {
        base = in - 1;
        *frac = 0;
    }
    *i0 = base;
    *i1 = base + 1 < in ? base + 1 : base;
}

/* Resizes `image` to width x height and writes it normalized, planar (CHW), to `out`. */
static void preprocess(const Image *image, size_t width, size_t height, float *out)
{
    static const float mean[3] = {0.485f, 0.456f, 0.406f};
    static const float stdev[3] = {0.229f, 0.224f, 0.225f};
    for (size_t y = 0; y < height; y++) {
        size_t y0, y1, x0, x1;
        uint32_t fy, fx;
        axis_map(image->height, height, y, &y0, &y1, &fy);
        for (size_t x = 0; x < width; x++) {
            axis_map(image->width, width, x, &x0, &x1, &fx);
            for (size_t c = 0; c < 3; c++) {
                const unsigned char *p = image->rgb;
                size_t w = image->width;
                uint32_t top = p[(y0 * w + x0) * 3 + c] * (2048 - fx) + p[(y0 * w + x1) * 3 + c] * fx;
                uint32_t bottom = p[(y1 * w + x0) * 3 + c] * (2048 - fx) + p[(y1 * w + x1) * 3 + c] * fx;
                uint64_t v = (uint64_t)top * (2048 - fy) + (uint64_t)bottom * fy;
                unsigned value = (unsigned)((v + (1u << 21)) >> 22);
                float f = (float)value / 255.0f;
                out[(c * height + y) * width + x] = (f - mean[c]) / stdev[c];
            }
        }
    }
}

/* Higher score first; equal scores by class index, so that every language agrees. */
static const float *g_scores;
static int by_score(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    if (g_scores[i] != g_scores[j])
        return g_scores[i] > g_scores[j] ? -1 : 1;
    return i < j ? -1 : (i > j);
}

/* Reads up to `count` lines of `path` into `labels` (missing ones stay NULL). */
static char *read_labels(const char *path, char **labels, size_t count)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    char *text = size >= 0 ? malloc((size_t)size + 1) : NULL;
    if (!text || fread(text, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "%s: cannot read\n", path);
        free(text);
        fclose(f);
        return NULL;
    }
    fclose(f);
    text[size] = '\0';
    char *line = text;
    for (size_t i = 0; i < count && *line; i++) {
        char *end = line + strcspn(line, "\r\n");
        char *next = end + strspn(end, "\r") + (end[strspn(end, "\r")] == '\n');
        *end = '\0';
        labels[i] = line;
        line = next;
    }
    return text;
}

static void print_shape(const PrunusTensorInfo *info)
{
    printf("[");
    for (size_t i = 0; i < info->rank; i++)
        printf("%s%zu", i ? ", " : "", info->shape[i]);
    printf("]");
}

/* Prints the failed call and the library's message; returns 1 for main. */
static int fail(const char *what, PrunusStatus status)
{
    fprintf(stderr, "%s failed: %s: %s\n", what, prunus_status_str(status), prunus_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    size_t top_k = 5;
    int arg = 1;
    if (argc > 2 && strcmp(argv[1], "-k") == 0) {
        top_k = strtoul(argv[2], NULL, 10);
        arg = 3;
    }
    if (argc - arg < 2 || argc - arg > 3 || top_k == 0) {
        fprintf(stderr, "usage: %s [-k N] MODEL.prunus IMAGE.ppm [LABELS.txt]\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[arg], *image_path = argv[arg + 1];
    const char *labels_path = argc - arg == 3 ? argv[arg + 2] : NULL;
    if (strcmp(prunus_version(), PRUNUS_VERSION_STRING) != 0)
        fprintf(stderr, "warning: header %s, library %s\n", PRUNUS_VERSION_STRING, prunus_version());

    int rc = 1;
    PrunusModel *model = NULL;
    PrunusSession *session = NULL;
    Image image = {0, 0, NULL};
    float *input = NULL;
    size_t *order = NULL;
    char **labels = NULL, *label_text = NULL;
    PrunusTensorInfo in, out;
    PrunusStatus status;

    if ((status = prunus_model_open(model_path, &model)) != PRUNUS_STATUS_OK) {
        rc = fail("prunus_model_open", status);
        goto done;
    }
    if ((status = prunus_model_input_info(model, 0, &in)) != PRUNUS_STATUS_OK ||
        (status = prunus_model_output_info(model, 0, &out)) != PRUNUS_STATUS_OK) {
        rc = fail("model info", status);
        goto done;
    }
    if (in.rank != 4 || in.shape[0] != 1 || in.shape[1] != 3) {
        fprintf(stderr, "%s: expected an input of shape [1, 3, H, W]\n", model_path);
        goto done;
    }
    printf("model: input '%s' ", in.name);
    print_shape(&in);
    printf(", output '%s' ", out.name);
    print_shape(&out);
    printf("\n");

    if (read_ppm(image_path, &image) != 0)
        goto done;
    size_t height = in.shape[2], width = in.shape[3];
    printf("image: %zux%zu -> %zux%zu\n", image.width, image.height, width, height);
    input = malloc(in.element_count * sizeof *input);
    order = malloc(out.element_count * sizeof *order);
    labels = calloc(out.element_count, sizeof *labels);
    if (!input || !order || !labels) {
        fprintf(stderr, "out of memory\n");
        goto done;
    }
    preprocess(&image, width, height, input);
    if (labels_path && !(label_text = read_labels(labels_path, labels, out.element_count)))
        goto done;

    /* NULL options: 1 thread, best instruction set, only outputs kept. */
    if ((status = prunus_session_new(model, NULL, &session)) != PRUNUS_STATUS_OK) {
        rc = fail("prunus_session_new", status);
        goto done;
    }
    const float *inputs[] = {input};
    const size_t input_lens[] = {in.element_count};
    if ((status = prunus_session_run(session, inputs, input_lens, 1)) != PRUNUS_STATUS_OK) {
        rc = fail("prunus_session_run", status);
        goto done;
    }
    const float *scores;
    size_t count;
    if ((status = prunus_session_output(session, 0, &scores, &count)) != PRUNUS_STATUS_OK) {
        rc = fail("prunus_session_output", status);
        goto done;
    }

    for (size_t i = 0; i < count; i++)
        order[i] = i;
    g_scores = scores;
    qsort(order, count, sizeof *order, by_score);
    if (top_k > count)
        top_k = count;
    printf("top-%zu:\n", top_k);
    for (size_t r = 0; r < top_k; r++) {
        size_t c = order[r];
        printf("%4zu  class %5zu  score %12.6f", r + 1, c, (double)scores[c]);
        if (labels_path)
            printf("  %s", labels[c] ? labels[c] : "");
        printf("\n");
    }
    rc = 0;

done:
    prunus_session_free(session);
    prunus_model_free(model);
    free(image.rgb);
    free(input);
    free(order);
    free(labels);
    free(label_text);
    return rc;
}
