// The executor over mutated artifacts. The checksum (ArtifactChecksum) in bytes 8..15 is recomputed
// over the mutated body so that the fuzzer reaches what follows it (a checksum is no
// reason to trust a file). The artifact's code is never loaded: a fake code module
// answers every kernel name with a kernel that reads the first and the last byte of
// every buffer the artifact says it may use, so AddressSanitizer checks that
// Executor::Create's bounds checks hold. When what Run allocates (inputs, outputs,
// arena) is small, the model runs once on zero-filled inputs of its declared specs.
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/artifact.h"
#include "runtime/code_module.h"
#include "runtime/error.h"
#include "runtime/executor.h"
#include "tests/fuzz/fuzz_targets.h"

namespace kiln::fuzz {
namespace {

constexpr uint64_t kRunBudgetBytes = uint64_t{16} << 20;
constexpr double kGemmBudget = 1e8;  // a fuzzed step may ask for any product its buffers hold

// The byte sizes of each kernel's arguments, in call order, for the fake kernel.
std::vector<std::vector<uint64_t>> g_arg_bytes;
size_t g_next_kernel = 0;

void TouchKernel(void* const* buffers, int64_t begin, int64_t end, const KilnRuntimeApi* api) {
  FuzzCheck(api != nullptr && begin <= end, "a kernel was called without its runtime table or with an empty range");
  FuzzCheck(g_next_kernel < g_arg_bytes.size(), "Run called more kernels than the artifact lists");
  const auto& sizes = g_arg_bytes[g_next_kernel++];
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] == 0) continue;
    const volatile unsigned char* bytes = static_cast<const unsigned char*>(buffers[i]);
    FuzzCheck(bytes != nullptr, "a kernel argument with bytes is a null pointer");
    (void)bytes[0];
    (void)bytes[sizes[i] - 1];
  }
}

// ABI records (runtime/kernel_abi.h) by kernel symbol: the fake code claims what the
// first call of each symbol says, so the other calls' consistency and every buffer
// reference are what Executor::Create has to check.
std::map<std::string, std::vector<int64_t>> g_abi_records;

class FakeCodeModule : public CodeModule {
 public:
  KilnKernelFn Find(const std::string&) const override { return &TouchKernel; }
  const int64_t* FindAbiRecord(const std::string& name) const override {
    const auto it = g_abi_records.find(name);
    return it == g_abi_records.end() ? nullptr : it->second.data();
  }
};

uint64_t SaturatingAdd(uint64_t a, uint64_t b) {
  return a + b < a ? UINT64_MAX : a + b;
}

uint64_t SpecBytes(const TensorSpec& spec) {
  try {
    return CheckedByteSize(spec.shape, spec.dtype);
  } catch (const Error&) {
    return UINT64_MAX;
  }
}

}  // namespace

int FuzzExecutor(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  if (bytes.size() >= 16) {
    const uint64_t checksum = ArtifactChecksum(std::string_view(bytes).substr(16));
    for (int i = 0; i < 8; ++i) bytes[8 + i] = static_cast<char>((checksum >> (8 * i)) & 0xff);
  }
  try {
    proto::ArtifactProto artifact = ParseArtifact(bytes, "fuzz.kiln");
    artifact.clear_code();  // never loaded: the fake module stands in for it
    g_arg_bytes.clear();
    g_abi_records.clear();
    double gemm_work = 0;  // multiply-adds of the library GEMM steps, which run for real
    for (const auto& call : artifact.kernels()) {
      if (call.has_gemm()) {
        const auto& g = call.gemm();
        gemm_work += static_cast<double>(g.batch()) * static_cast<double>(g.m()) * static_cast<double>(g.n()) *
                     static_cast<double>(g.k());
        continue;  // no kernel of its own
      }
      std::vector<uint64_t> sizes;
      std::vector<int64_t> record = {call.args_size(), call.parallel_extent()};
      for (const auto& arg : call.args()) {
        sizes.push_back(arg.bytes());
        record.push_back(static_cast<int64_t>(arg.bytes()));
      }
      g_arg_bytes.push_back(std::move(sizes));
      g_abi_records.emplace(call.symbol(), std::move(record));
    }
    const auto executor = Executor::Create(artifact, std::make_shared<FakeCodeModule>(), {.threads = 1}, "fuzz.kiln");

    // What Run allocates: its arena (at least one byte), the outputs, and our inputs.
    uint64_t run_bytes = static_cast<uint64_t>(std::max<int64_t>(executor->arena_bytes(), 1));
    for (const auto& spec : executor->inputs()) run_bytes = SaturatingAdd(run_bytes, SpecBytes(spec));
    for (const auto& spec : executor->outputs()) run_bytes = SaturatingAdd(run_bytes, SpecBytes(spec));
    if (run_bytes >= kRunBudgetBytes || gemm_work > kGemmBudget) return 0;
    std::vector<Tensor> inputs;
    for (const auto& spec : executor->inputs()) inputs.emplace_back(spec.shape, spec.dtype);
    g_next_kernel = 0;
    const std::vector<Tensor> outputs = executor->Run(inputs);
    FuzzCheck(outputs.size() == executor->outputs().size(), "Run returned another number of outputs than declared");
    FuzzCheck(g_next_kernel == g_arg_bytes.size(), "Run did not call every kernel once");
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace kiln::fuzz
