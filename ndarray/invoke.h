// Operator calls on NDArrays: every call runs compiled code (on GPU arrays, CUDA code
// compiled by NVRTC, run by a CudaExecutor on the arrays' device memory). A kernel cache keyed by
// (operator, canonical attributes, input shapes and dtypes, training mode) holds one
// compiled one-node graph per key: the first call compiles it with the LLVM JIT (or
// loads it from the on-disk CompileCache), later calls only run it. In front of it,
// each thread keeps its calls resolved (hashed by operator name, attributes as given,
// mode, input shapes and dtypes): a repeated call parses, infers and locks nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "graph/attrs.h"
#include "graph/graph.h"
#include "ndarray/ndarray.h"
#include "runtime/executor.h"

namespace kiln::nd {

// Runs `op_name` (any registered operator or alias) on `inputs`. Shapes and dtypes are
// inferred before anything runs: errors name the operator, the argument and the
// expected and given shapes. With `out`, output 0 is written into *out (same shape;
// MXNet's out= forms) and *out is returned. An operator with a num_args attribute
// gets the input count when it is not given.
NDArray Invoke(std::string_view op_name, const std::vector<NDArray>& inputs, const AttrMap& attrs = {},
               NDArray* out = nullptr);
// Every output of the operator.
std::vector<NDArray> InvokeAll(std::string_view op_name, const std::vector<NDArray>& inputs, const AttrMap& attrs = {});

// The on-disk cache of compiled kernels; "" keeps kernels in memory only. The default is
// CompileCache::DefaultDir() ("" when KILN_CACHE_DIR=off).
void SetCacheDir(const std::string& dir);
std::string CacheDir();

struct KernelCacheStats {
  int64_t hits = 0;       // calls that found their kernel in memory
  int64_t compiles = 0;   // kernels built by LLVM
  int64_t disk_hits = 0;  // kernels loaded from the on-disk cache instead
};
KernelCacheStats GetKernelCacheStats();
// Drops every kernel kept in memory (the on-disk cache stays) and zeroes the counters.
// GPU calls compile on the stream kiln::SetGpuStreamFactory gives (codegen/compiler.h):
// clear after changing it.
void ClearKernelCache();

namespace detail {
// A compiled graph and the position of each of its executor's inputs among the caller's.
struct CompiledGraph {
  std::unique_ptr<Executor> executor;
  std::vector<size_t> input_order;
  // The executor inputs its kernels write in place (BatchNorm's moving statistics in
  // training mode): Run copies them back when it had to pass a copy.
  std::vector<size_t> mutated_inputs;
};
// The compiled `graph` whose variables are named by `input_names` (values are given in
// that order), cached under `key` (which must determine the graph and its input shapes).
std::shared_ptr<const CompiledGraph> GetOrCompile(const std::string& key, const std::function<Graph()>& build,
                                                  const std::vector<std::string>& input_names,
                                                  const std::vector<TensorSpec>& input_specs, bool is_train);
// Runs `compiled` on `values` (in input_names order); inputs the graph mutates are
// updated in the caller's memory. With `outputs` (the executor's output shapes and
// dtypes, sharing no memory with the inputs), the results are written there.
std::vector<Tensor> Run(const CompiledGraph& compiled, const std::vector<Tensor>& values,
                        std::vector<Tensor> outputs = {});
// The same graph compiled for gpu(ordinal) (cached under `key` and the GPU), run on
// device values in `input_specs` order; the results stay on the GPU.
std::vector<DeviceTensor> RunOnGpu(const std::string& key, const std::function<Graph()>& build,
                                   const std::vector<TensorSpec>& input_specs, bool is_train, int ordinal,
                                   const std::vector<DeviceTensor>& values);
// The attributes as canonical text (sorted, MXNet's spelling): part of cache keys.
std::string CanonicalAttrs(const Attrs& attrs);
}  // namespace detail

}  // namespace kiln::nd
