#include "runtime/executor.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>

#include "runtime/artifact.h"
#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/gemm_step.h"
#include "runtime/param_file.h"
#include "runtime/runtime_api.h"
#include "runtime/thread_pool.h"

// Linux 5.14; older kernels refuse it and the arena is written instead.
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace kiln {

// Arenas up to this size are made and populated at load (ArenaPool::Warm).
constexpr int64_t kWarmArenaMaxBytes = int64_t{256} << 20;

// One arena's memory: anonymous pages of its own mapping, optionally populated in one
// call instead of a fault per page during the first run (ResNet-18's 9 MB: 7 ms faulted
// and written, ~1 ms populated). Never read before a kernel writes it, so never cleared.
// (MADV_HUGEPAGE measured worse: with the kernel's defrag=madvise default it makes the
// populate compact memory, and loads took 9 to 24 ms instead of 9 to 13.)
class Executor::Arena {
 public:
  Arena(size_t bytes, bool populate) : bytes_(std::max<size_t>(bytes, 1)) {
    void* const memory = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
      throw Error("out of memory: cannot map an arena of " + std::to_string(bytes_) + " bytes");
    }
    data_ = static_cast<char*>(memory);
    // if (bytes_ >= kHugePageBytes) ::madvise(data_, bytes_, MADV_HUGEPAGE);  // a hint; refusal is harmless
    if (populate && ::madvise(data_, bytes_, MADV_POPULATE_WRITE) != 0) std::memset(data_, 0, bytes_);
  }
  ~Arena() {
    if (data_ != nullptr) ::munmap(data_, bytes_);
  }
  Arena(Arena&& other) noexcept : data_(std::exchange(other.data_, nullptr)), bytes_(other.bytes_) {}
  Arena& operator=(Arena&&) = delete;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  char* data() const { return data_; }

 private:
  char* data_ = nullptr;
  size_t bytes_;
};

// Arenas for concurrent calls: a call takes one (or makes one) and gives it back, so
// steady-state runs allocate nothing for intermediates. At most `max_idle` are kept:
// a burst of concurrent callers does not hold its peak memory forever.
class Executor::ArenaPool {
 public:
  ArenaPool(int64_t bytes, size_t max_idle) : bytes_(static_cast<size_t>(bytes)), max_idle_(max_idle) {}

  class Lease {
   public:
    Lease(ArenaPool* pool, std::unique_ptr<Arena> arena) : pool_(pool), arena_(std::move(arena)) {}
    ~Lease() { pool_->Return(std::move(arena_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    char* data() { return arena_->data(); }

   private:
    ArenaPool* pool_;
    std::unique_ptr<Arena> arena_;
  };

  // Makes one arena with its pages populated, so that the first run finds them mapped
  // rather than faulting them in kernel by kernel.
  void Warm() { Return(std::make_unique<Arena>(bytes_, /*populate=*/true)); }

  size_t idle() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return free_.size();
  }

  Lease Acquire() {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      if (!free_.empty()) {
        std::unique_ptr<Arena> arena = std::move(free_.back());
        free_.pop_back();
        return Lease(this, std::move(arena));
      }
    }
    return Lease(this, std::make_unique<Arena>(bytes_, /*populate=*/false));
  }

 private:
  void Return(std::unique_ptr<Arena> arena) {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (free_.size() < max_idle_) free_.push_back(std::move(arena));
  }

  size_t bytes_;
  size_t max_idle_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Arena>> free_;
};

TensorSpec SpecFromProto(const proto::TensorSpec& spec, const std::string& where) {
  const std::string what = where + ": tensor '" + Abbreviate(spec.name()) + "'";
  if (!IsValidDTypeCode(spec.dtype())) {
    throw Error(what + " has an unknown dtype code " + std::to_string(spec.dtype()) + " (expected 0 to " +
                std::to_string(kNumDTypes - 1) + ")");
  }
  TensorSpec out{spec.name(), static_cast<DType>(spec.dtype()), Shape(spec.shape().begin(), spec.shape().end())};
  try {
    CheckedByteSize(out.shape, out.dtype);  // negative dimensions, overflow, absurd sizes
  } catch (const Error& e) {
    throw Error(what + ": " + e.what());
  }
  return out;
}

namespace {

// The most arguments a kernel may have (an ABI record claiming more is corrupt).
constexpr int64_t kMaxKernelArgs = 1 << 16;

std::string Describe(const TensorSpec& spec) {
  return std::string(DTypeName(spec.dtype)) + " " + ShapeToString(spec.shape);
}

}  // namespace

void CheckMatches(const Tensor& tensor, const TensorSpec& spec, const std::string& what) {
  if (!tensor.defined()) throw Error(what + " '" + spec.name + "': expected " + Describe(spec) + ", given nothing");
  CheckMatches(tensor.shape(), tensor.dtype(), spec, what);
}

void CheckMatches(const Shape& shape, DType dtype, const TensorSpec& spec, const std::string& what) {
  if (shape == spec.shape && dtype == spec.dtype) return;
  throw Error(what + " '" + spec.name + "': expected " + Describe(spec) + ", given " + std::string(DTypeName(dtype)) +
              " " + ShapeToString(shape));
}

void CheckBufferRef(const proto::BufferRef& arg, uint64_t needed, uint64_t arena_bytes, const PlanTensors& tensors,
                    const std::string& arg_what) {
  if (arg.bytes() < needed) {
    throw Error(arg_what + ": the code reads or writes " + std::to_string(needed) + " bytes, the artifact gives " +
                std::to_string(arg.bytes()));
  }
  const std::vector<TensorSpec>* specs = nullptr;
  switch (arg.kind()) {
    case proto::BufferRef::ARENA:
      if (arg.offset() % kArenaAlignment != 0) {
        throw Error(arg_what + ": arena offset " + std::to_string(arg.offset()) + " is not a multiple of " +
                    std::to_string(kArenaAlignment));
      }
      if (arg.offset() > arena_bytes || arg.bytes() > arena_bytes - arg.offset()) {
        throw Error(arg_what + ": bytes [" + std::to_string(arg.offset()) + ", +" + std::to_string(arg.bytes()) +
                    ") reach outside the arena of " + std::to_string(arena_bytes) + " bytes");
      }
      break;
    case proto::BufferRef::INPUT: specs = tensors.inputs; break;
    case proto::BufferRef::PARAM: specs = tensors.params; break;
    case proto::BufferRef::OUTPUT: specs = tensors.outputs; break;
    default: throw Error(arg_what + ": unknown buffer kind " + std::to_string(arg.kind()));
  }
  if (specs != nullptr) {
    const std::string kind = proto::BufferRef::Kind_Name(arg.kind());
    if (arg.index() >= specs->size()) {
      throw Error(arg_what + ": " + kind + " " + std::to_string(arg.index()) + " does not exist (there are " +
                  std::to_string(specs->size()) + ")");
    }
    const TensorSpec& spec = (*specs)[arg.index()];
    const uint64_t size = CheckedByteSize(spec.shape, spec.dtype);
    if (arg.offset() != 0 || arg.bytes() > size) {
      throw Error(arg_what + ": bytes [" + std::to_string(arg.offset()) + ", +" + std::to_string(arg.bytes()) +
                  ") reach outside " + kind + " '" + Abbreviate(spec.name) + "' of " + std::to_string(size) + " bytes");
    }
  }
}

void CheckGemmStepCall(const proto::KernelCall& call, uint64_t arena_bytes, const PlanTensors& tensors,
                       const std::string& where) {
  const std::string what = where + ": the GEMM step of node '" + Abbreviate(call.node()) + "'";
  if (!call.symbol().empty()) throw Error(what + " also names a kernel, '" + Abbreviate(call.symbol()) + "'");
  const std::vector<uint64_t> needed = CheckGemmCall(call, what);
  for (int i = 0; i < call.args_size(); ++i) {
    CheckBufferRef(call.args(i), needed[static_cast<size_t>(i)], arena_bytes, tensors,
                   what + ", buffer " + std::to_string(i));
  }
}

std::vector<Tensor> OrderInputs(const std::vector<TensorSpec>& specs, const std::map<std::string, Tensor>& inputs) {
  for (const auto& [given_name, tensor] : inputs) {
    const std::string& name = given_name;  // a lambda may not capture a structured binding (clang 14)
    if (std::none_of(specs.begin(), specs.end(), [&](const TensorSpec& s) { return s.name == name; })) {
      std::string known;
      for (const auto& s : specs) known += (known.empty() ? "" : ", ") + s.name;
      throw Error("unknown input '" + name + "'; the model's inputs are {" + known + "}");
    }
  }
  std::vector<Tensor> ordered;
  for (const auto& spec : specs) {
    const auto it = inputs.find(spec.name);
    if (it == inputs.end()) throw Error("missing input '" + spec.name + "' (expected " + Describe(spec) + ")");
    ordered.push_back(it->second);
  }
  return ordered;
}

Executor::~Executor() = default;

namespace {

// The parameters of an opened artifact as tensors where they lie in the mapped file (or
// copies where they are not aligned); adds the bytes left in place to `in_place_bytes`.
std::map<std::string, Tensor> EmbeddedParams(const ArtifactView& view, const std::shared_ptr<const FileBytes>& file,
                                             uint64_t& in_place_bytes) {
  std::map<std::string, Tensor> embedded;
  for (size_t i = 0; i < view.param_data.size(); ++i) {
    const proto::TensorProto& value = view.message.param_values(static_cast<int>(i));
    const std::string_view bytes = view.param_data[i];
    Tensor tensor =
        Tensor::View(Shape(value.shape().begin(), value.shape().end()), static_cast<DType>(value.dtype()), bytes, file);
    // A signed artifact's envelope shifts the data off the alignment the kernels'
    // vector loads prefer: such parameters are copied.
    if (reinterpret_cast<uintptr_t>(bytes.data()) % kArtifactDataAlignment != 0 || !file->mapped()) {
      tensor = tensor.Clone();
    } else {
      in_place_bytes += bytes.size();
    }
    embedded[value.name()] = std::move(tensor);
  }
  return embedded;
}

// The CPU executor refuses GPU code, pointing to the CUDA executor.
void CheckCudaArtifact(const proto::CudaCodeProto& cuda, const std::string& path) {
  throw GpuArtifactError("'" + path + "' holds GPU code (" + cuda.ptx_arch() +
                         "): load it with kiln::CudaExecutor (runtime/cuda_executor.h), or compile it for the CPU");
}

}  // namespace

std::unique_ptr<Executor> Executor::Load(const std::string& path, const ExecutorOptions& options) {
  // The file is mapped and its parameters used in place: nothing is parsed or copied
  // element by element, and the checksum is the one pass over the bytes.
  const std::shared_ptr<const FileBytes> file = FileBytes::Open(path);
  ArtifactView view = OpenArtifact(file->bytes(), path, options.trusted_keys);
  if (view.message.has_cuda()) CheckCudaArtifact(view.message.cuda(), path);
  CheckTarget(view.message.target(), path);
  uint64_t in_place_bytes = 0;
  const auto embedded = EmbeddedParams(view, file, in_place_bytes);
  view.message.clear_param_values();
  auto executor = Build(view.message, LoadSharedObject(view.code), embedded, options, path, nullptr);
  // Batch specializations share the thread pool; weights they share lie once in the file.
  for (ArtifactView& variant : view.batch_variants) {
    const auto variant_params = EmbeddedParams(variant, file, in_place_bytes);
    variant.message.clear_param_values();
    executor->AddBatchVariant(
        Build(variant.message, LoadSharedObject(variant.code), variant_params, options, path, executor.get()));
  }
  executor->mapped_param_bytes_ = in_place_bytes;
  return executor;
}

size_t Executor::idle_arenas() const {
  return arenas_->idle();
}

void Executor::AddBatchVariant(std::unique_ptr<Executor> variant) {
  batch_sizes_.insert(std::upper_bound(batch_sizes_.begin(), batch_sizes_.end(), variant->batch_size_),
                      variant->batch_size_);
  variants_.push_back(std::move(variant));
}

const Executor& Executor::ForBatch(int64_t batch) const {
  if (batch == batch_size_ && batch_size_ > 0) return *this;
  for (const auto& variant : variants_) {
    if (variant->batch_size_ == batch) return *variant;
  }
  std::string sizes;
  for (const int64_t size : batch_sizes_) sizes += (sizes.empty() ? "" : ", ") + std::to_string(size);
  throw Error("'" + source_ + "' has no code for batch size " + std::to_string(batch) +
              (sizes.empty() ? std::string(" (it was compiled for its input shapes only)")
                             : " (compiled for batch sizes " + sizes + ")"));
}

const Executor& Executor::SpecializationFor(const std::vector<Tensor>& inputs) const {
  if (variants_.empty() || inputs.empty() || inputs[0].shape().empty() || inputs[0].shape()[0] == batch_size_) {
    return *this;
  }
  return ForBatch(inputs[0].shape()[0]);  // names the batch sizes there are
}

std::unique_ptr<Executor> Executor::Create(proto::ArtifactProto artifact, std::shared_ptr<const CodeModule> code,
                                           const ExecutorOptions& options, const std::string& source) {
  if (artifact.batch_variants_size() > 0) {
    throw Error("'" + source + "': an artifact with batch specializations loads from its file (Executor::Load)");
  }
  std::map<std::string, Tensor> embedded;
  for (int i = 0; i < artifact.param_values_size(); ++i) {
    const auto& value = artifact.param_values(i);
    embedded[value.name()] = TensorFromProto(value, "'" + source + "': parameter '" + value.name() + "'");
  }
  return Build(artifact, std::move(code), embedded, options, source, nullptr);
}

std::unique_ptr<Executor> Executor::Build(const proto::ArtifactProto& artifact, std::shared_ptr<const CodeModule> code,
                                          const std::map<std::string, Tensor>& embedded, const ExecutorOptions& options,
                                          const std::string& source, const Executor* specialized_from) {
  std::unique_ptr<Executor> executor(new Executor());  // private constructor
  Executor& e = *executor;
  e.source_ = source;
  e.code_ = std::move(code);
  const std::string where = "'" + source + "'";
  for (const auto& spec : artifact.inputs()) e.inputs_.push_back(SpecFromProto(spec, where));
  for (const auto& spec : artifact.outputs()) e.outputs_.push_back(SpecFromProto(spec, where));
  for (const auto& spec : artifact.params()) e.params_.push_back(SpecFromProto(spec, where));
  e.param_values_.resize(e.params_.size());
  e.arena_bytes_ = static_cast<int64_t>(artifact.arena_bytes());
  e.batch_size_ = artifact.batch_size();
  if (e.batch_size_ > 0) e.batch_sizes_.push_back(e.batch_size_);

  if (artifact.arena_bytes() > kMaxTensorBytes) {
    throw Error(where + ": arena of " + std::to_string(artifact.arena_bytes()) + " bytes exceeds kiln's limit of " +
                std::to_string(kMaxTensorBytes));
  }
  for (const auto& call : artifact.kernels()) e.kernels_.push_back(e.PlanKernel(call, where));
  e.BindParams(embedded);

  if (options.threads < 0 || options.threads > kMaxThreads) {
    throw Error("ExecutorOptions::threads must be 0 (all cores) or 1 to " + std::to_string(kMaxThreads) + ", given " +
                std::to_string(options.threads));
  }
  if (specialized_from != nullptr) {
    e.pool_ = specialized_from->pool_;
  } else if (options.threads == 0) {
    e.pool_ = &DefaultThreadPool();
  } else if (options.threads > 1) {
    e.own_pool_ = std::make_unique<ThreadPool>(options.threads);
    e.pool_ = e.own_pool_.get();
  }
  const size_t max_idle = options.max_idle_arenas > 0 ? static_cast<size_t>(options.max_idle_arenas)
                                                      : std::max<size_t>(1, std::thread::hardware_concurrency());
  e.arenas_ = std::make_unique<ArenaPool>(e.arena_bytes_, max_idle);
  // Not for arenas beyond kWarmArenaMaxBytes: an artifact's size claim costs nothing
  // until a run needs the memory (a fuzzed artifact asked for 79 GB at load). Nor for a
  // batch specialization: its arena is made at its first run, since a server may never
  // run most of them (ResNet-18 with batch sizes up to 16 held 271 MB of anonymous
  // memory at load, 11 without the larger batches' arenas).
  if (specialized_from == nullptr && e.arena_bytes_ <= kWarmArenaMaxBytes) e.arenas_->Warm();
  return executor;
}

// Checks one kernel call of the artifact against the code's own ABI record and the
// buffers it names: a checksum says nothing about whether the metadata is consistent.
Executor::KernelPlan Executor::PlanKernel(const proto::KernelCall& call, const std::string& where) const {
  KernelPlan plan;
  plan.node = call.node();
  if (call.has_gemm()) {
    CheckGemmStepCall(call, static_cast<uint64_t>(arena_bytes_), {&inputs_, &params_, &outputs_}, where);
    plan.args.assign(call.args().begin(), call.args().end());
    plan.gemm = call.gemm();
    plan.parallel_extent = call.gemm().batch();
    return plan;
  }
  const std::string what =
      where + ": kernel '" + Abbreviate(call.symbol()) + "' (node '" + Abbreviate(call.node()) + "')";
  plan.fn = code_->Find(call.symbol());
  if (plan.fn == nullptr) throw Error(what + " is missing from the code object");
  const int64_t* record = code_->FindAbiRecord(call.symbol());
  if (record == nullptr) throw Error(what + " has no ABI record in the code object; recompile the model");
  const int64_t num_args = record[0];
  if (num_args < 0 || num_args > kMaxKernelArgs) throw Error(what + ": its ABI record is corrupt");
  if (call.args_size() != num_args) {
    throw Error(what + ": the code takes " + std::to_string(num_args) + " buffers, the artifact gives " +
                std::to_string(call.args_size()));
  }
  if (call.parallel_extent() != record[1]) {
    throw Error(what + ": the code's parallel extent is " + std::to_string(record[1]) + ", the artifact says " +
                std::to_string(call.parallel_extent()));
  }
  plan.parallel_extent = std::max<int64_t>(record[1], 1);
  for (int i = 0; i < call.args_size(); ++i) {
    const proto::BufferRef& arg = call.args(i);
    const std::string arg_what = what + ", buffer " + std::to_string(i);
    const auto needed = static_cast<uint64_t>(record[2 + i]);
    CheckBufferRef(arg, needed, static_cast<uint64_t>(arena_bytes_), {&inputs_, &params_, &outputs_}, arg_what);
    plan.args.push_back(arg);
  }
  return plan;
}

void Executor::BindParams(const std::map<std::string, Tensor>& params, bool allow_extra) {
  for (const auto& [given_name, tensor] : params) {
    const std::string& name = given_name;  // a lambda may not capture a structured binding (clang 14)
    const auto it = std::find_if(params_.begin(), params_.end(), [&](const TensorSpec& s) { return s.name == name; });
    if (it == params_.end()) {
      if (allow_extra) continue;
      throw Error("'" + source_ + "' has no parameter named '" + name + "'");
    }
    CheckMatches(tensor, *it, "parameter");
    param_values_[static_cast<size_t>(it - params_.begin())] = tensor;
  }
  for (const auto& variant : variants_) variant->BindParams(params, true);
}

std::vector<std::string> Executor::MissingParams() const {
  std::vector<std::string> missing;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!param_values_[i].defined()) missing.push_back(params_[i].name);
  }
  return missing;
}

std::vector<Tensor> Executor::Run(const std::map<std::string, Tensor>& inputs) const {
  return Run(OrderInputs(inputs_, inputs));
}

std::vector<Tensor> Executor::Run(const std::vector<Tensor>& inputs) const {
  return Run(inputs, nullptr);
}

void CheckInputs(const std::vector<TensorSpec>& specs, const std::vector<Tensor>& inputs) {
  if (inputs.size() != specs.size()) {
    throw Error("expected " + std::to_string(specs.size()) + " inputs, given " + std::to_string(inputs.size()));
  }
  for (size_t i = 0; i < inputs.size(); ++i) CheckMatches(inputs[i], specs[i], "input");
}

void Executor::CheckInputs(const std::vector<Tensor>& inputs) const {
  kiln::CheckInputs(inputs_, inputs);
  if (const auto missing = MissingParams(); !missing.empty()) {
    std::string names;
    for (const auto& name : missing) names += (names.empty() ? "" : ", ") + name;
    throw Error("parameters not bound: " + names);
  }
}

std::vector<Tensor> Executor::Run(const std::vector<Tensor>& inputs, std::vector<double>* kernel_seconds) const {
  if (const Executor& other = SpecializationFor(inputs); &other != this) return other.Run(inputs, kernel_seconds);
  CheckInputs(inputs);
  std::vector<Tensor> outputs;
  for (const auto& spec : outputs_) outputs.emplace_back(spec.shape, spec.dtype);
  Execute(inputs, outputs, kernel_seconds);
  return outputs;
}

void Executor::RunInto(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) const {
  if (const Executor& other = SpecializationFor(inputs); &other != this) return other.RunInto(inputs, outputs);
  CheckInputs(inputs);
  if (outputs.size() != outputs_.size()) {
    throw Error("expected " + std::to_string(outputs_.size()) + " output buffers, given " +
                std::to_string(outputs.size()));
  }
  for (size_t i = 0; i < outputs.size(); ++i) CheckMatches(outputs[i], outputs_[i], "output");
  Execute(inputs, outputs, nullptr);
}

void Executor::Execute(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs,
                       std::vector<double>* kernel_seconds) const {
  auto arena = arenas_->Acquire();
  const KilnRuntimeApi* api = DefaultRuntimeApi();
  std::vector<void*> buffers;
  if (kernel_seconds != nullptr) kernel_seconds->resize(kernels_.size(), 0.0);
  for (size_t k = 0; k < kernels_.size(); ++k) {
    const KernelPlan& kernel = kernels_[k];
    const auto start =
        kernel_seconds != nullptr ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    buffers.clear();
    for (const auto& arg : kernel.args) {
      switch (arg.kind()) {
        case proto::BufferRef::ARENA: buffers.push_back(arena.data() + arg.offset()); break;
        case proto::BufferRef::INPUT: buffers.push_back(const_cast<void*>(inputs[arg.index()].data())); break;
        case proto::BufferRef::PARAM: buffers.push_back(const_cast<void*>(param_values_[arg.index()].data())); break;
        case proto::BufferRef::OUTPUT: buffers.push_back(outputs[arg.index()].data()); break;
        default: break;
      }
    }
    void* const* args = buffers.data();
    if (kernel.gemm) {
      const proto::GemmCallProto& gemm = *kernel.gemm;
      const auto run = [&](int64_t begin, int64_t end) {
        RunGemmOnHost(gemm, static_cast<const float*>(args[gemm.a_arg()]),
                      static_cast<const float*>(args[gemm.b_arg()]), static_cast<float*>(args[gemm.c_arg()]), api,
                      begin, end);
      };
      if (pool_ != nullptr && gemm.batch() > 1) {
        pool_->ParallelFor(gemm.batch(), run);
      } else {
        run(0, gemm.batch());
      }
    } else if (pool_ != nullptr && kernel.parallel_extent > 1) {
      pool_->ParallelFor(kernel.parallel_extent, [&](int64_t begin, int64_t end) { kernel.fn(args, begin, end, api); });
    } else {
      kernel.fn(args, 0, kernel.parallel_extent, api);
    }
    if (kernel_seconds != nullptr) {
      (*kernel_seconds)[k] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
  }
}

}  // namespace kiln
