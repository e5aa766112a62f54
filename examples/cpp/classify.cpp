// classify (C++): the C example's flow through the RAII wrapper prunus.hpp. Loads a model,
// reads a binary PPM, resizes (fixed-point bilinear, as the C and Rust examples), normalizes,
// runs with run_into and prints the top classes, with labels if a labels file is given.
//
//   classify_cpp [-k N] MODEL.prunus IMAGE.ppm [LABELS.txt]
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "prunus.hpp"

namespace {

struct Image {
    std::size_t width = 0, height = 0;
    std::vector<unsigned char> rgb;
};

bool is_space(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Next PPM header token: skips whitespace and # comments, consumes one byte after it.
bool ppm_token(std::istream &in, std::string &token)
{
    int c;
    for (;;) {
        c = in.get();
        if (c == '#')
            while (c != '\n' && c != EOF)
                c = in.get();
        if (c == EOF)
            return false;
        if (!is_space(c))
            break;
    }
    token.clear();
    while (c != EOF && !is_space(c) && c != '#') {
        token.push_back(static_cast<char>(c));
        c = in.get();
    }
    return c != '#' && c != EOF && token.size() <= 30;
}

Image read_ppm(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw std::runtime_error(path + ": cannot open");
    const std::runtime_error bad(path + ": not a binary PPM (P6) with maxval <= 255");
    std::string token;
    if (!ppm_token(in, token) || token != "P6")
        throw bad;
    unsigned long dims[3];
    for (unsigned long &d : dims) {
        if (!ppm_token(in, token))
            throw bad;
        char *end = nullptr;
        d = std::strtoul(token.c_str(), &end, 10);
        if (*end != '\0' || d == 0 || d > 65535)
            throw bad;
    }
    if (dims[2] > 255)
        throw bad;
    Image image;
    image.width = dims[0];
    image.height = dims[1];
    image.rgb.resize(image.width * image.height * 3);
    in.read(reinterpret_cast<char *>(image.rgb.data()), static_cast<std::streamsize>(image.rgb.size()));
    if (static_cast<std::size_t>(in.gcount()) != image.rgb.size())
        throw std::runtime_error(path + ": truncated pixel data");
    if (dims[2] != 255)
        for (unsigned char &v : image.rgb)
            v = static_cast<unsigned char>((v * 255u + dims[2] / 2) / dims[2]);
    return image;
}

struct Tap {
    std::size_t i0, i1;
    std::uint32_t frac;
};

// Source position of destination index i, in 1/2048 pixels (same as the C example).
Tap axis_map(std::size_t in, std::size_t out, std::size_t i)
{
    std::int64_t fixed = ((static_cast<std::int64_t>(2 * i + 1) * static_cast<std::int64_t>(in)) -
                          static_cast<std::int64_t>(out)) * 2048 / (2 * static_cast<std::int64_t>(out));
    fixed = std::max<std::int64_t>(fixed, 0);
    Tap t{static_cast<std::size_t>(fixed >> 11), 0, static_cast<std::uint32_t>(fixed & 2047)};
    if (t.i0 >= in - 1) {
        t.i0 = in - 1;
        t.frac = 0;
    }
    t.i1 = std::min(t.i0 + 1, in - 1);
    return t;
}

std::vector<float> preprocess(const Image &image, std::size_t width, std::size_t height)
{
    static const float mean[3] = {0.485f, 0.456f, 0.406f};
    static const float stdev[3] = {0.229f, 0.224f, 0.225f};
    std::vector<float> out(3 * width * height);
    const std::size_t w = image.width;
    for (std::size_t y = 0; y < height; y++) {
        const Tap ty = axis_map(image.height, height, y);
        for (std::size_t x = 0; x < width; x++) {
            const Tap tx = axis_map(image.width, width, x);
            for (std::size_t c = 0; c < 3; c++) {
                auto px = [&](std::size_t yy, std::size_t xx) -> std::uint32_t {
                    return image.rgb[(yy * w + xx) * 3 + c];
                };
                std::uint32_t top = px(ty.i0, tx.i0) * (2048 - tx.frac) + px(ty.i0, tx.i1) * tx.frac;
                std::uint32_t bottom = px(ty.i1, tx.i0) * (2048 - tx.frac) + px(ty.i1, tx.i1) * tx.frac;
                std::uint64_t v = static_cast<std::uint64_t>(top) * (2048 - ty.frac) +
                                  static_cast<std::uint64_t>(bottom) * ty.frac;
                unsigned value = static_cast<unsigned>((v + (1u << 21)) >> 22);
                float f = static_cast<float>(value) / 255.0f;
                out[(c * height + y) * width + x] = (f - mean[c]) / stdev[c];
            }
        }
    }
    return out;
}

std::string shape_text(const std::vector<std::size_t> &shape)
{
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); i++)
        s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

std::vector<std::string> read_labels(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw std::runtime_error(path + ": cannot open");
    std::vector<std::string> labels;
    for (std::string line; std::getline(in, line);) {
        while (!line.empty() && line.back() == '\r')
            line.pop_back();
        labels.push_back(line);
    }
    return labels;
}

} // namespace

int main(int argc, char **argv)
{
    std::vector<std::string> args(argv + 1, argv + argc);
    std::size_t top_k = 5;
    if (args.size() > 2 && args[0] == "-k") {
        top_k = std::strtoul(args[1].c_str(), nullptr, 10);
        args.erase(args.begin(), args.begin() + 2);
    }
    if (args.size() < 2 || args.size() > 3 || top_k == 0) {
        std::cerr << "usage: " << argv[0] << " [-k N] MODEL.prunus IMAGE.ppm [LABELS.txt]\n";
        return 2;
    }
    try {
        const prunus::Model model = prunus::Model::open(args[0]);
        const prunus::TensorInfo in = model.input(0), out = model.output(0);
        if (in.shape.size() != 4 || in.shape[0] != 1 || in.shape[1] != 3)
            throw std::runtime_error(args[0] + ": expected an input of shape [1, 3, H, W]");
        std::printf("model: input '%s' %s, output '%s' %s\n", in.name.c_str(), shape_text(in.shape).c_str(),
                    out.name.c_str(), shape_text(out.shape).c_str());

        const Image image = read_ppm(args[1]);
        const std::size_t height = in.shape[2], width = in.shape[3];
        std::printf("image: %zux%zu -> %zux%zu\n", image.width, image.height, width, height);
        const std::vector<float> input = preprocess(image, width, height);
        const std::vector<std::string> labels = args.size() == 3 ? read_labels(args[2]) : std::vector<std::string>();

        prunus::Session session(model);
        std::vector<std::vector<float>> outputs;
        session.run_into({input}, outputs);
        const std::vector<float> &scores = outputs.at(0);

        std::vector<std::size_t> order(scores.size());
        std::iota(order.begin(), order.end(), 0);
        std::sort(order.begin(), order.end(), [&](std::size_t i, std::size_t j) {
            return scores[i] != scores[j] ? scores[i] > scores[j] : i < j;
        });
        top_k = std::min(top_k, scores.size());
        std::printf("top-%zu:\n", top_k);
        for (std::size_t r = 0; r < top_k; r++) {
            const std::size_t c = order[r];
            std::printf("%4zu  class %5zu  score %12.6f", r + 1, c, static_cast<double>(scores[c]));
            if (args.size() == 3)
                std::printf("  %s", c < labels.size() ? labels[c].c_str() : "");
            std::printf("\n");
        }
    } catch (const prunus::Error &e) {
        std::fprintf(stderr, "prunus error (%s): %s\n", prunus_status_str(e.status()), e.what());
        return 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}
