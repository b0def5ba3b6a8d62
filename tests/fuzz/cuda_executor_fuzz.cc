// The CUDA executor over mutated GPU artifacts (kiln compile --target cuda). The checksum
// is recomputed as in the executor target, so the fuzzer reaches the plan. A fake device
// stands in for the GPU: it hands out address ranges and checks that every copy and
// every launch's buffer lies inside one it handed out, so the plan's bounds checks in
// CudaExecutor are what the fuzzer tests. When what Run allocates on the host is small,
// the model runs once on zero-filled inputs.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/artifact.h"
#include "runtime/cuda_device.h"
#include "runtime/cuda_executor.h"
#include "runtime/error.h"
#include "tests/fuzz/fuzz_targets.h"

namespace kiln::fuzz {
namespace {

constexpr uint64_t kRunBudgetBytes = uint64_t{16} << 20;

// Checks that every address the executor uses lies in memory it allocated (on any of the
// device's streams).
class FakeDevice final : public CudaDevice {
 public:
  FakeDevice() : memory_(std::make_shared<Memory>()) {}
  std::string name() const override { return "fuzz"; }
  int ordinal() const override { return 0; }
  std::unique_ptr<CudaDevice> OpenStream() const override {
    auto stream = std::make_unique<FakeDevice>();
    stream->memory_ = memory_;
    return stream;
  }
  uint64_t Allocate(size_t bytes) override {
    if (bytes == 0) return 0;
    const uint64_t address = memory_->next;
    memory_->next += (bytes + 4095) / 4096 * 4096 + 4096;  // a gap after each
    memory_->ranges[address] = bytes;
    return address;
  }
  void Free(uint64_t address) override {
    FuzzCheck(address == 0 || memory_->ranges.erase(address) == 1, "freed an address never allocated");
  }
  void CopyToDevice(uint64_t device, const void*, size_t bytes) override { CheckInside(device, bytes, "a copy"); }
  void CopyToHost(void*, uint64_t device, size_t bytes) override { CheckInside(device, bytes, "a copy"); }
  void CopyOnDevice(uint64_t destination, uint64_t source, size_t bytes) override {
    CheckInside(destination, bytes, "a copy");
    CheckInside(source, bytes, "a copy");
  }
  void LoadModule(const proto::CudaCodeProto& code) override { kernels_ = code.kernels_size(); }
  void Launch(size_t kernel, const CudaLaunch& launch, const std::vector<uint64_t>& buffers, int64_t begin,
              int64_t end) override {
    FuzzCheck(kernel < kernels_, "a launch of a kernel the module does not have");
    FuzzCheck(launch.grid >= 0 && launch.grid <= kCudaMaxBlocks && begin <= end, "a launch out of bounds");
    for (const uint64_t address : buffers) CheckInside(address, 0, "a kernel argument");
  }
  void PrepareGemm(bool) override { gemm_ready_ = true; }
  // Every batch item's operands lie inside memory handed out (cuBLAS's column-major view).
  void Gemm(const CublasGemmCall& call, uint64_t first, uint64_t second, uint64_t c) override {
    FuzzCheck(gemm_ready_, "a GEMM before PrepareGemm");
    if (call.empty) return;
    FuzzCheck(call.m >= 0 && call.n >= 0 && call.k >= 0 && call.batch >= 1, "a GEMM of negative size");
    const auto check = [&](uint64_t base, int64_t offset, int64_t stride, bool transpose, int64_t rows, int64_t cols,
                           int32_t ld) {
      // Column-major rows x cols as op sees it; stored transposed when `transpose`.
      const int64_t stored_rows = transpose ? cols : rows, stored_cols = transpose ? rows : cols;
      if (stored_rows == 0 || stored_cols == 0) return;
      FuzzCheck(ld >= stored_rows, "a GEMM operand's leading dimension below its rows");
      const int64_t end = offset + (call.batch - 1) * stride + (stored_cols - 1) * int64_t{ld} + stored_rows;
      CheckInside(base + static_cast<uint64_t>(offset) * 4, static_cast<size_t>(end - offset) * 4, "a GEMM operand");
    };
    check(first, call.first_offset, call.stride_first, call.transpose_first, call.m, call.k, call.ld_first);
    check(second, call.second_offset, call.stride_second, call.transpose_second, call.k, call.n, call.ld_second);
    check(c, call.c_offset, call.stride_c, false, call.m, call.n, call.ldc);
  }
  void Synchronize() override {}
  void BeginCapture() override {}
  void EndCapture() override {}
  void Replay() override {}

 private:
  void CheckInside(uint64_t address, size_t bytes, const char* what) const {
    if (address == 0 && bytes == 0) return;
    auto it = memory_->ranges.upper_bound(address);
    FuzzCheck(it != memory_->ranges.begin(), what);
    --it;
    FuzzCheck(address >= it->first && address - it->first + bytes <= it->second &&
                  (bytes > 0 || address - it->first <= it->second),
              what);
  }

  struct Memory {
    uint64_t next = uint64_t{1} << 32;
    std::map<uint64_t, size_t> ranges;
  };
  std::shared_ptr<Memory> memory_;
  size_t kernels_ = 0;
  bool gemm_ready_ = false;
};

uint64_t HostBytes(const std::vector<TensorSpec>& specs) {
  uint64_t total = 0;
  for (const auto& spec : specs) {
    try {
      total += CheckedByteSize(spec.shape, spec.dtype);
    } catch (const Error&) {
      return UINT64_MAX;
    }
    if (total >= kRunBudgetBytes) return UINT64_MAX;
  }
  return total;
}

}  // namespace

int FuzzCudaExecutor(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  if (bytes.size() >= 16) {
    const uint64_t checksum = ArtifactChecksum(std::string_view(bytes).substr(16));
    for (int i = 0; i < 8; ++i) bytes[8 + i] = static_cast<char>((checksum >> (8 * i)) & 0xff);
  }
  try {
    const proto::ArtifactProto artifact = ParseArtifact(bytes, "fuzz.kiln");
    const auto executor = CudaExecutor::Create(artifact, std::make_unique<FakeDevice>());
    if (HostBytes(executor->inputs()) + HostBytes(executor->outputs()) >= kRunBudgetBytes) return 0;
    std::vector<Tensor> inputs;
    for (const auto& spec : executor->inputs()) inputs.emplace_back(spec.shape, spec.dtype);
    const std::vector<Tensor> outputs = executor->Run(inputs);
    FuzzCheck(outputs.size() == executor->outputs().size(), "Run returned another number of outputs than declared");
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace kiln::fuzz
