// The executor: loads a compiled artifact, binds its parameters, and runs it. One
// loaded executor may run from many threads at once: parameters and code are shared and
// read-only, and every call takes its own arena from a pool.
//
//   auto model = kiln::Executor::Load("lenet.kiln");
//   std::vector<kiln::Tensor> out = model->Run({{"data", image}});
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "proto/artifact.pb.h"
#include "runtime/code_module.h"
#include "runtime/error.h"
#include "runtime/kernel_abi.h"
#include "runtime/signing.h"
#include "runtime/tensor.h"

namespace kiln {

class ThreadPool;

struct TensorSpec {
  std::string name;
  DType dtype = DType::kFloat32;
  Shape shape;
};

// Executor::Load's refusal of an artifact of GPU code (kiln compile --target cuda), so
// that a caller can hand the file to CudaExecutor (runtime/cuda_executor.h) instead.
class GpuArtifactError : public Error {
 public:
  using Error::Error;
};

// The spec an artifact declares; throws kiln::Error naming `where` and the tensor when it
// is malformed (unknown dtype, bad shape).
TensorSpec SpecFromProto(const proto::TensorSpec& spec, const std::string& where);
// Throws unless `tensor` matches `spec`: "<what> '<name>': expected ..., given ...".
void CheckMatches(const Tensor& tensor, const TensorSpec& spec, const std::string& what);
// The same for a tensor given by its shape and dtype (one in device memory).
void CheckMatches(const Shape& shape, DType dtype, const TensorSpec& spec, const std::string& what);
// Throws unless `inputs` are as many as `specs` and each matches its spec.
void CheckInputs(const std::vector<TensorSpec>& specs, const std::vector<Tensor>& inputs);
// The tensors a kernel call's buffers name by index.
struct PlanTensors {
  const std::vector<TensorSpec>* inputs;
  const std::vector<TensorSpec>* params;
  const std::vector<TensorSpec>* outputs;
};
// Throws unless buffer `arg` of a kernel call gives the `needed` bytes the code uses and
// lies inside the arena (aligned) or inside the tensor it names; `arg_what` names it.
void CheckBufferRef(const proto::BufferRef& arg, uint64_t needed, uint64_t arena_bytes, const PlanTensors& tensors,
                    const std::string& arg_what);
// Throws unless a library GEMM step (call.gemm set) names no kernel, its product is
// consistent (CheckGemmCall) and each of its buffers gives what the product uses (as
// CheckBufferRef); `where` names the artifact.
void CheckGemmStepCall(const proto::KernelCall& call, uint64_t arena_bytes, const PlanTensors& tensors,
                       const std::string& where);
// Named inputs in the order of `specs`; throws for an unknown or a missing name.
std::vector<Tensor> OrderInputs(const std::vector<TensorSpec>& specs, const std::map<std::string, Tensor>& inputs);

struct ExecutorOptions {
  // Threads for the kernels' parallel loops: 0 uses the process-wide pool (all cores,
  // or KILN_NUM_THREADS), 1 runs everything on the calling thread.
  int threads = 0;
  // Arenas kept for reuse once their calls return; callers beyond that many at once
  // allocate one for the call and free it after. 0: one per hardware thread.
  int max_idle_arenas = 0;
  // When not empty, Load refuses an artifact that is not signed by one of these keys,
  // before any of its code is mapped. An unsigned artifact is trusted code: loading it
  // runs it, as loading a shared library does.
  std::vector<PublicKey> trusted_keys{};
};

class Executor {
 public:
  // Loads an artifact file and the code object inside it. The file is mapped; its
  // parameters are used where they lie (read-only) and the mapping lives as long as the
  // executor.
  static std::unique_ptr<Executor> Load(const std::string& path, const ExecutorOptions& options = {});
  // An artifact whose code is already loaded (the JIT path of the compiler).
  static std::unique_ptr<Executor> Create(proto::ArtifactProto artifact, std::shared_ptr<const CodeModule> code,
                                          const ExecutorOptions& options = {},
                                          const std::string& source = "<artifact>");
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  const std::vector<TensorSpec>& inputs() const { return inputs_; }
  const std::vector<TensorSpec>& outputs() const { return outputs_; }
  const std::vector<TensorSpec>& params() const { return params_; }
  int64_t arena_bytes() const { return arena_bytes_; }
  size_t num_kernels() const { return kernels_.size(); }
  // Bytes of parameters Load left where they lie in the mapped artifact (the rest are
  // copies: bound by the caller, or in a file that could not be mapped or aligned).
  uint64_t mapped_param_bytes() const { return mapped_param_bytes_; }
  // Arenas kept for the next calls: one after Load (its pages populated, so that the first
  // run does not fault them in), none for a batch specialization until it runs.
  size_t idle_arenas() const;

  // Batch specializations (kiln compile --batch-sizes): the batch sizes (axis 0 of every
  // input and output) the artifact holds code for, ascending; empty when it was compiled
  // for its input shapes only. inputs() and outputs() are this executor's own batch's
  // (batch_size()); Run with another batch's inputs runs that batch's code.
  const std::vector<int64_t>& batch_sizes() const { return batch_sizes_; }
  int64_t batch_size() const { return batch_size_; }
  // The specialization for `batch`; throws kiln::Error naming the sizes there are.
  const Executor& ForBatch(int64_t batch) const;

  // Binds parameters by name, checking shape and dtype. A name the model does not have
  // is an error unless `allow_extra`. Not to be called while Run is running.
  void BindParams(const std::map<std::string, Tensor>& params, bool allow_extra = false);
  // Names of parameters not bound yet (Run refuses to run while any are missing).
  std::vector<std::string> MissingParams() const;

  // Runs the model. Inputs by name (every input is required; an unknown name is an
  // error), or in inputs() order. Thread-safe.
  std::vector<Tensor> Run(const std::map<std::string, Tensor>& inputs) const;
  std::vector<Tensor> Run(const std::vector<Tensor>& inputs) const;
  // Run, adding each kernel's wall time in seconds to (*kernel_seconds)[k], which it
  // sizes to num_kernels() if needed: a per-node profile (kiln bench --profile).
  std::vector<Tensor> Run(const std::vector<Tensor>& inputs, std::vector<double>* kernel_seconds) const;
  // Run writing into `outputs`, allocated by the caller with outputs()' shapes and dtypes
  // (a training step's double buffers: nothing is allocated per call but the arena the
  // pool already keeps). Outputs must not share memory with inputs or with each other.
  void RunInto(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) const;
  // The graph node kernel k computes.
  const std::string& kernel_node(size_t k) const { return kernels_.at(k).node; }

 private:
  // A kernel of the code object, or (fn null) a library GEMM step on `args`.
  struct KernelPlan {
    KilnKernelFn fn = nullptr;
    std::optional<proto::GemmCallProto> gemm;
    std::string node;
    int64_t parallel_extent = 1;
    std::vector<proto::BufferRef> args;
  };
  class Arena;
  class ArenaPool;

  Executor() = default;
  // `specialized_from`: the executor this one is a batch specialization of; it runs on
  // that one's thread pool and makes its arena at its first run, not at load.
  static std::unique_ptr<Executor> Build(const proto::ArtifactProto& artifact, std::shared_ptr<const CodeModule> code,
                                         const std::map<std::string, Tensor>& embedded, const ExecutorOptions& options,
                                         const std::string& source, const Executor* specialized_from);
  void AddBatchVariant(std::unique_ptr<Executor> variant);
  // This executor, or the batch specialization whose batch the inputs have.
  const Executor& SpecializationFor(const std::vector<Tensor>& inputs) const;
  KernelPlan PlanKernel(const proto::KernelCall& call, const std::string& where) const;
  void CheckInputs(const std::vector<Tensor>& inputs) const;
  void Execute(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs,
               std::vector<double>* kernel_seconds) const;

  std::string source_;
  std::shared_ptr<const CodeModule> code_;
  std::vector<TensorSpec> inputs_;
  std::vector<TensorSpec> outputs_;
  std::vector<TensorSpec> params_;
  std::vector<Tensor> param_values_;
  std::vector<KernelPlan> kernels_;
  int64_t arena_bytes_ = 0;
  uint64_t mapped_param_bytes_ = 0;
  std::unique_ptr<ThreadPool> own_pool_;
  ThreadPool* pool_ = nullptr;  // null: run on the calling thread
  std::unique_ptr<ArenaPool> arenas_;
  int64_t batch_size_ = 0;
  std::vector<int64_t> batch_sizes_;                 // this one's and the variants', ascending
  std::vector<std::unique_ptr<Executor>> variants_;  // the other batch sizes
};

}  // namespace kiln
