// The GPU proof (tools/gpu_check.sh): runs every case make_gpu_cases prepared on GPU 0
// with the CUDA executor and compares with the CPU's outputs. Each case runs three times:
// plain launches, then with the CUDA Graph captured and replayed, which must equal the
// plain launches bit for bit, then with its inputs and outputs in device memory
// (DeviceTensor), equal again. Models also run from 8 threads at once on an executor of 4
// call contexts (streams), every result equal to the plain launches'. Links the runtime
// only (no LLVM, no NVRTC, no compiler).
// Ends with "gpu_check: N passed, M failed"; exit 0 when all pass, 1 when one fails, 2
// when there is no GPU.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "runtime/artifact.h"
#include "runtime/cuda_driver.h"
#include "runtime/cuda_executor.h"
#include "runtime/device_tensor.h"
#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/param_file.h"

using namespace kiln;

namespace {

struct Expected {
  int index = 0;
  double rtol = 0, atol = 0;
};

struct Case {
  std::string name, artifact, tensors;
  std::vector<Expected> outputs;
  double bandwidth_bytes = 0;  // a bandwidth case: bytes a call moves
  int64_t timing_batch = 0;    // a timing case: the batch it was compiled for
};

std::vector<Case> ReadManifest(const std::string& dir) {
  std::ifstream in(dir + "/manifest.txt");
  if (!in) throw Error("cannot read " + dir + "/manifest.txt");
  std::vector<Case> cases;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string kind;
    words >> kind;
    if (kind == "case") {
      cases.emplace_back();
      words >> cases.back().name >> cases.back().artifact >> cases.back().tensors;
    } else if (kind == "timing") {
      cases.emplace_back();
      words >> cases.back().name >> cases.back().artifact >> cases.back().timing_batch;
    } else if (kind == "bandwidth") {
      cases.emplace_back();
      words >> cases.back().name >> cases.back().artifact >> cases.back().bandwidth_bytes;
    } else if (kind == "out" && !cases.empty()) {
      Expected e;
      words >> e.index >> e.rtol >> e.atol;
      cases.back().outputs.push_back(e);
    }
  }
  return cases;
}

// The first element outside rtol / atol, or "" (NaNs agree with NaNs).
std::string Compare(const Tensor& got, const Tensor& want, double rtol, double atol) {
  if (got.dtype() != want.dtype() || got.shape() != want.shape()) return "dtype or shape differs";
  for (int64_t i = 0; i < got.size(); ++i) {
    const double a = got.GetDouble(i), b = want.GetDouble(i);
    if (std::isnan(a) && std::isnan(b)) continue;
    if (a == b) continue;
    if (!(std::fabs(a - b) <= atol + rtol * std::fabs(b))) {
      return "element " + std::to_string(i) + ": " + std::to_string(a) + ", expected " + std::to_string(b);
    }
  }
  return "";
}

// Seeded uniform values in [-scale, scale] for a float32 tensor (others stay zero).
Tensor RandomValues(const TensorSpec& spec, uint32_t seed, float scale) {
  Tensor tensor(spec.shape, spec.dtype);
  if (spec.dtype == DType::kFloat32) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> uniform(-scale, scale);
    float* values = tensor.data_as<float>();
    for (int64_t i = 0; i < tensor.size(); ++i) values[i] = uniform(rng);
  }
  return tensor;
}

// A model's device time a call (the CUDA Graph replayed, inputs already on the device),
// with random parameters: the best of 5 rounds of 10 calls.
double TimeModel(const std::string& path) {
  const std::shared_ptr<const FileBytes> file = FileBytes::Open(path);
  const ArtifactView view = OpenArtifact(file->bytes(), path);
  CudaExecutorOptions options;
  uint32_t seed = 1;
  for (const auto& spec : view.message.params()) {
    const TensorSpec param = SpecFromProto(spec, path);
    options.params[param.name] = RandomValues(param, seed++, 0.05f);
  }
  const auto executor = CudaExecutor::Load(path, nullptr, options);
  std::vector<Tensor> inputs;
  for (const auto& spec : executor->inputs()) inputs.push_back(RandomValues(spec, seed++, 1.0f));
  executor->Run(inputs);
  double best = 1e30;
  for (int round = 0; round < 5; ++round) best = std::min(best, executor->SecondsPerCall(10));
  return best;
}

// The first output of `executor` run with device-resident inputs that differs from
// `want` (plain launches' outputs), or "".
std::string CheckDeviceResident(CudaExecutor& executor, const std::vector<Tensor>& inputs,
                                const std::vector<Tensor>& want) {
  std::vector<DeviceTensor> on_device;
  for (const Tensor& input : inputs) on_device.push_back(DeviceTensor::FromHost(input, Context::gpu(0)));
  const std::vector<DeviceTensor> outputs = executor.Run(on_device);
  for (size_t k = 0; k < want.size(); ++k) {
    if (!outputs.at(k).ToHost().BitwiseEquals(want[k])) {
      return "output " + std::to_string(k) + ": with inputs and outputs on the device it differs from plain launches";
    }
  }
  return "";
}

// Runs the artifact from 8 threads at once on 4 call contexts; "" when every result
// equals `want`.
std::string CheckCallContexts(const std::string& path, const std::vector<Tensor>& inputs,
                              const std::vector<Tensor>& want) {
  CudaExecutorOptions options;
  options.call_contexts = 4;
  const auto executor = CudaExecutor::Load(path, nullptr, options);
  std::vector<std::string> problems(8);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < problems.size(); ++t) {
    threads.emplace_back([&, t] {
      try {
        // Each thread's own copy: a training step writes its moving statistics back.
        std::vector<Tensor> own;
        for (const Tensor& input : inputs) own.push_back(input.Clone());
        for (int call = 0; call < 3; ++call) {
          const std::vector<Tensor> got = executor->Run(own);
          for (size_t k = 0; k < want.size(); ++k) {
            if (!got.at(k).BitwiseEquals(want[k])) problems[t] = "a call from thread " + std::to_string(t) + " differs";
          }
        }
      } catch (const std::exception& e) {
        problems[t] = e.what();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const std::string& problem : problems) {
    if (!problem.empty()) return "call contexts: " + problem;
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: gpu_check DIR (made by make_gpu_cases)\n");
    return 2;
  }
  const std::string dir = argv[1];
  CudaDeviceInfo gpu;
  try {
    gpu = ListCudaDevices().front();
    std::printf("gpu_check: GPU 0 is %s (%s), memory %.0f GB/s at peak\n", gpu.name.c_str(), gpu.Arch().c_str(),
                gpu.PeakBandwidth() / 1e9);
  } catch (const Error& e) {
    std::printf("gpu_check: %s\n", e.what());
    return 2;
  }
  int passed = 0, failed = 0;
  for (const Case& c : ReadManifest(dir)) {
    std::string problem;
    if (c.timing_batch > 0) {
      try {
        const double seconds = TimeModel(dir + "/" + c.artifact);
        std::printf("timing %s: %.3f ms a call (device time), %.0f images/s\n", c.name.c_str(), seconds * 1e3,
                    c.timing_batch / seconds);
      } catch (const std::exception& e) {
        std::printf("FAIL %s: %s\n", c.name.c_str(), e.what());
        ++failed;
      }
      continue;
    }
    if (c.bandwidth_bytes > 0) {
      try {
        const double seconds = CudaExecutor::Load(dir + "/" + c.artifact)->SecondsPerCall(50);
        const double rate = c.bandwidth_bytes / seconds;
        std::printf("bandwidth %s: %.3f ms a call, %.0f GB/s, %.1f%% of peak (goal: 85%%)\n", c.name.c_str(),
                    seconds * 1e3, rate / 1e9, 100 * rate / gpu.PeakBandwidth());
      } catch (const std::exception& e) {
        std::printf("FAIL %s: %s\n", c.name.c_str(), e.what());
        ++failed;
      }
      continue;
    }
    try {
      const auto tensors = LoadParams(dir + "/" + c.tensors).AsMap();
      std::vector<Tensor> inputs;
      for (size_t i = 0; tensors.count("in" + std::to_string(i)); ++i)
        inputs.push_back(tensors.at("in" + std::to_string(i)));
      CudaExecutorOptions plain;
      plain.cuda_graph = false;
      const auto direct = CudaExecutor::Load(dir + "/" + c.artifact, nullptr, plain)->Run(inputs);
      const auto graphed = CudaExecutor::Load(dir + "/" + c.artifact);
      graphed->Run(inputs);  // captures
      const auto start = std::chrono::steady_clock::now();
      const auto replayed = graphed->Run(inputs);
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      for (size_t k = 0; k < c.outputs.size() && problem.empty(); ++k) {
        const Tensor& want = tensors.at("out" + std::to_string(c.outputs[k].index));
        problem = Compare(direct.at(k), want, c.outputs[k].rtol, c.outputs[k].atol);
        if (!problem.empty()) problem = "output " + std::to_string(k) + ": " + problem;
        if (problem.empty() && !replayed.at(k).BitwiseEquals(direct.at(k))) {
          problem = "output " + std::to_string(k) + ": the CUDA Graph's replay differs from plain launches";
        }
      }
      if (problem.empty()) problem = CheckDeviceResident(*graphed, inputs, direct);
      if (problem.empty() && c.name.rfind("model_", 0) == 0) {
        problem = CheckCallContexts(dir + "/" + c.artifact, inputs, direct);
      }
      if (problem.empty()) std::printf("PASS %s (%.3f ms a call with copies)\n", c.name.c_str(), ms);
    } catch (const std::exception& e) {
      problem = e.what();
    }
    if (problem.empty()) {
      ++passed;
    } else {
      ++failed;
      std::printf("FAIL %s: %s\n", c.name.c_str(), problem.c_str());
    }
  }
  std::printf("gpu_check: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
