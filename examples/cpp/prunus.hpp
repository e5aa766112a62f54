// prunus.hpp: a header-only C++17 RAII wrapper over the Prunus C API (prunus.h).
//
//   auto model = prunus::Model::open("model.prunus");
//   prunus::Session session(model);                  // or Session(model, Options().isa("scalar"))
//   session.run({image});                            // std::vector<float> or prunus::Span
//   prunus::Span logits = session.output(0);         // valid until the next run
//
// Every failing call throws prunus::Error, which carries the PrunusStatus and the library's
// message. Handles are move-only and freed by their destructors. Thread safety is the C
// API's: a Model may be shared by threads (const methods); a Session is used by one thread
// at a time.
#ifndef PRUNUS_HPP
#define PRUNUS_HPP

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "prunus.h"

namespace prunus {

/// A failed Prunus call: the status and the message of prunus_last_error().
class Error : public std::runtime_error {
public:
    Error(PrunusStatus status, const std::string &message)
        : std::runtime_error(message), status_(status) {}

    /// The status the C function returned.
    PrunusStatus status() const noexcept { return status_; }

private:
    PrunusStatus status_;
};

namespace detail {
/// Throws Error for any status but PRUNUS_STATUS_OK.
inline void check(PrunusStatus status)
{
    if (status != PRUNUS_STATUS_OK)
        throw Error(status, prunus_last_error());
}

struct ModelDeleter {
    void operator()(PrunusModel *m) const noexcept { prunus_model_free(m); }
};
struct SessionDeleter {
    void operator()(PrunusSession *s) const noexcept { prunus_session_free(s); }
};
struct OptionsDeleter {
    void operator()(PrunusOptions *o) const noexcept { prunus_options_free(o); }
};
} // namespace detail

/// A read-only view of floats (an input, or an output owned by a session).
struct Span {
    const float *data = nullptr;
    std::size_t size = 0;

    Span() = default;
    Span(const float *d, std::size_t n) : data(d), size(n) {}
    Span(const std::vector<float> &v) : data(v.data()), size(v.size()) {} // NOLINT: implicit
    const float *begin() const { return data; }
    const float *end() const { return data + size; }
    float operator[](std::size_t i) const { return data[i]; }
};

/// A model input or output: name, shape (NCHW), element count.
struct TensorInfo {
    std::string name;
    std::vector<std::size_t> shape;
    std::size_t element_count = 0;
    PrunusDtype dtype = PRUNUS_DTYPE_F32;
};

/// Session options (see prunus_options_*); the setters chain.
class Options {
public:
    Options()
    {
        PrunusOptions *raw = nullptr;
        detail::check(prunus_options_new(&raw));
        ptr_.reset(raw);
    }
    Options &threads(std::size_t n)
    {
        detail::check(prunus_options_set_threads(ptr_.get(), n));
        return *this;
    }
    Options &affinity(PrunusAffinity a)
    {
        detail::check(prunus_options_set_affinity(ptr_.get(), static_cast<int>(a)));
        return *this;
    }
    /// An instruction set by name ("scalar", ...); nullptr for the default.
    Options &isa(const char *name)
    {
        detail::check(prunus_options_set_isa(ptr_.get(), name));
        return *this;
    }
    Options &retain(const std::string &tensor_name)
    {
        detail::check(prunus_options_retain(ptr_.get(), tensor_name.c_str()));
        return *this;
    }
    const PrunusOptions *get() const noexcept { return ptr_.get(); }

private:
    std::unique_ptr<PrunusOptions, detail::OptionsDeleter> ptr_;
};

/// A validated model; share one between threads, each with its own Session.
class Model {
public:
    /// Memory-maps and validates a model file.
    static Model open(const std::string &path)
    {
        PrunusModel *raw = nullptr;
        detail::check(prunus_model_open(path.c_str(), &raw));
        return Model(raw);
    }
    /// Validates a model in caller memory (aligned to PRUNUS_MODEL_ALIGNMENT), which must
    /// outlive the model and its sessions.
    static Model from_memory(const void *data, std::size_t len)
    {
        PrunusModel *raw = nullptr;
        detail::check(prunus_model_from_memory(data, len, &raw));
        return Model(raw);
    }

    std::size_t input_count() const
    {
        std::size_t n = 0;
        detail::check(prunus_model_input_count(ptr_.get(), &n));
        return n;
    }
    std::size_t output_count() const
    {
        std::size_t n = 0;
        detail::check(prunus_model_output_count(ptr_.get(), &n));
        return n;
    }
    TensorInfo input(std::size_t index) const
    {
        PrunusTensorInfo info;
        detail::check(prunus_model_input_info(ptr_.get(), index, &info));
        return convert(info);
    }
    TensorInfo output(std::size_t index) const
    {
        PrunusTensorInfo info;
        detail::check(prunus_model_output_info(ptr_.get(), index, &info));
        return convert(info);
    }
    /// Full checksum pass over the weights; throws on corruption.
    void verify() const { detail::check(prunus_model_verify(ptr_.get())); }
    const PrunusModel *get() const noexcept { return ptr_.get(); }

private:
    explicit Model(PrunusModel *raw) : ptr_(raw) {}
    static TensorInfo convert(const PrunusTensorInfo &info)
    {
        TensorInfo t;
        t.name = info.name;
        t.shape.assign(info.shape, info.shape + info.rank);
        t.element_count = info.element_count;
        t.dtype = info.dtype;
        return t;
    }
    std::unique_ptr<PrunusModel, detail::ModelDeleter> ptr_;
};

/// A runnable instance of a model, used by one thread at a time. It keeps the model alive.
class Session {
public:
    explicit Session(const Model &model, const Options *options = nullptr)
    {
        PrunusSession *raw = nullptr;
        detail::check(prunus_session_new(model.get(), options ? options->get() : nullptr, &raw));
        ptr_.reset(raw);
        for (std::size_t i = 0, n = model.output_count(); i < n; i++)
            output_sizes_.push_back(model.output(i).element_count);
    }
    Session(const Model &model, const Options &options) : Session(model, &options) {}

    /// Runs on one span per model input; read results with output().
    void run(const std::vector<Span> &inputs)
    {
        std::vector<const float *> data;
        std::vector<std::size_t> lens;
        split(inputs, data, lens);
        detail::check(prunus_session_run(ptr_.get(), data.data(), lens.data(), data.size()));
    }

    /// Runs and copies each output into `outputs` (resized to the model's output sizes).
    void run_into(const std::vector<Span> &inputs, std::vector<std::vector<float>> &outputs)
    {
        std::vector<const float *> data;
        std::vector<std::size_t> lens;
        split(inputs, data, lens);
        outputs.resize(output_sizes_.size());
        std::vector<float *> out;
        std::vector<std::size_t> out_lens;
        for (std::size_t i = 0; i < outputs.size(); i++) {
            outputs[i].resize(output_sizes_[i]);
            out.push_back(outputs[i].data());
            out_lens.push_back(outputs[i].size());
        }
        detail::check(prunus_session_run_into(ptr_.get(), data.data(), lens.data(), data.size(),
                                              out.data(), out_lens.data(), out.size()));
    }

    /// Output `index` of the last run, owned by the session until its next run.
    Span output(std::size_t index) const
    {
        const float *data = nullptr;
        std::size_t len = 0;
        detail::check(prunus_session_output(ptr_.get(), index, &data, &len));
        return Span(data, len);
    }

    /// A tensor kept with Options::retain, by name, after the last run.
    Span tensor(const std::string &name) const
    {
        const float *data = nullptr;
        std::size_t len = 0;
        detail::check(prunus_session_tensor(ptr_.get(), name.c_str(), &data, &len));
        return Span(data, len);
    }

private:
    static void split(const std::vector<Span> &inputs, std::vector<const float *> &data,
                      std::vector<std::size_t> &lens)
    {
        for (const Span &s : inputs) {
            data.push_back(s.data);
            lens.push_back(s.size);
        }
    }
    std::unique_ptr<PrunusSession, detail::SessionDeleter> ptr_;
    std::vector<std::size_t> output_sizes_;
};

/// The library's version string (PRUNUS_VERSION_STRING is the header's).
inline std::string version() { return prunus_version(); }

} // namespace prunus

#endif // PRUNUS_HPP
