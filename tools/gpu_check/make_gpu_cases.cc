// Prepares the GPU proof (tools/gpu_check.sh) on a machine without a GPU: every
// operator's CUDA-compilable cases, a set of random fused graphs and small models (matrix
// products and convolutions as cuBLAS steps, tests/codegen/gpu_models.h), compiled for the GPU
// (PTX for compute_80, cubins for sm_80 and sm_90), with their inputs and the CPU's
// outputs (the JIT, itself checked against the reference) in one kiln tensor file per
// case (tensors "in<i>" and "out<k>": every dtype, bfloat16 too), listed in
// DIR/manifest.txt for gpu_check:
//   case NAME ARTIFACT TENSORS
//   out K RTOL ATOL   (one line per output)
//   bandwidth NAME ARTIFACT BYTES   (a fused elementwise kernel over 256 MB tensors,
//                                    timed on the device: BYTES read and written a call)
//   timing NAME ARTIFACT BATCH      (an ONNX model compiled at BATCH with its parameters
//                                    folded and then left out, to travel small: gpu_check
//                                    binds random ones and times a call on the device)
// Usage: make_gpu_cases DIR [ONNX_DIR]; ONNX_DIR holds resnet18.onnx and resnet50.onnx
// (tools/onnx/export_models.py) for the timing cases.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "codegen/compiler.h"
#include "runtime/artifact.h"
#include "runtime/error.h"
#include "runtime/param_file.h"
#include "symbol/onnx/onnx_import.h"
#include "symbol/symbol.h"
#include "tests/codegen/gpu_models.h"
#include "tests/codegen/op_cases.h"
#include "tests/random_graphs.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

// Compiles `graph` for the GPU and writes it with its inputs and the CPU's outputs.
void WriteCase(const std::string& dir, const std::string& name, const Graph& graph, const CompileOptions& cpu_options,
               const std::map<std::string, Tensor>& inputs, const std::function<Tolerance(DType)>& tolerance,
               std::ofstream& manifest) {
  CompileOptions gpu_options = cpu_options;
  gpu_options.cuda = CompileOptions::Cuda{{"sm_80", "sm_90"}};
  SaveArtifact(dir + "/" + name + ".kiln", CompileGraph(graph, gpu_options));
  const auto cpu = CompileJit(graph, cpu_options);
  std::map<std::string, Tensor> feeds, tensors;
  for (size_t i = 0; i < cpu->inputs().size(); ++i) {
    const std::string& input = cpu->inputs()[i].name;
    feeds[input] = inputs.at(input);
    tensors["in" + std::to_string(i)] = feeds[input];
  }
  const std::vector<Tensor> outputs = cpu->Run(feeds);
  manifest << "case " << name << " " << name << ".kiln " << name << ".tensors\n";
  for (size_t k = 0; k < outputs.size(); ++k) {
    tensors["out" + std::to_string(k)] = outputs[k];
    const Tolerance tol = tolerance(outputs[k].dtype());
    manifest << "out " << k << " " << tol.rtol << " " << tol.atol << "\n";
  }
  SaveParams(dir + "/" + name + ".tensors", tensors);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 && argc != 3) {
    std::fprintf(stderr, "usage: make_gpu_cases DIR [ONNX_DIR]\n");
    return 2;
  }
  const std::string dir = argv[1];
  try {
    std::filesystem::create_directories(dir);
    std::ofstream manifest(dir + "/manifest.txt");
    size_t cases = 0, left_out = 0;
    for (const auto& [op, all] : AllOpCases()) {
      // Random operators' draws are checked by their moments elsewhere, not here.
      if (!all.front().random.is_null()) continue;
      EmittableCases emittable = Emittable(*op, OnePerDtype(all));
      left_out += emittable.left_out;
      if (emittable.cases.empty()) continue;
      const CaseGraph graph = BuildCaseGraph(*op, emittable.cases);
      WriteCase(
          dir, "op_" + op->name(), graph.graph, graph.options, graph.inputs,
          [&](DType dtype) { return ToleranceFor(dtype, op->pattern()); }, manifest);
      ++cases;
    }
    for (uint64_t seed = 1; seed <= 40; ++seed) {
      const Generated g = GraphGenerator(seed, /*smooth=*/true).Make();
      CompileOptions options;
      options.input_shapes = {{"data", kShape}};
      if (!AllEmittable(LowerGraph(g.graph, ForCuda(options)))) continue;
      WriteCase(
          dir, "random_" + std::to_string(seed), g.graph, options, g.inputs,
          [](DType) {
            return Tolerance{1e-5, 1e-6};
          },
          manifest);
      ++cases;
    }
    for (const GpuModel& model : GpuModels()) {
      // cuBLAS's float32 GEMMs against the CPU's sgemm: as the emulation's tolerance.
      WriteCase(
          dir, "model_" + model.name, model.graph, CompileOptions{}, model.inputs,
          [](DType) {
            return Tolerance{1e-4, 1e-5};
          },
          manifest);
      ++cases;
    }
    {
      // A training step: forward, backward (convolutions' gradients as cuBLAS steps) and
      // SGD's update; the outputs are the loss layer's and every updated parameter.
      const GpuTrainingStep step = MakeGpuTrainingStep();
      WriteCase(
          dir, "train_step_lenet", step.graph, step.options, step.feeds,
          [](DType) {
            return Tolerance{1e-4, 1e-5};
          },
          manifest);
      ++cases;
    }
    {
      // relu(a * b + c) on 2^26 floats (256 MB each): one fused kernel reading three
      // tensors and writing one.
      const int64_t n = int64_t{1} << 26;
      const Symbol a = Symbol::Variable("a", Shape{n}), b = Symbol::Variable("b", Shape{n}),
                   c = Symbol::Variable("c", Shape{n});
      const Symbol y = Symbol::Create("relu", {a * b + c}, {});
      CompileOptions options;
      options.cuda = CompileOptions::Cuda{{"sm_80", "sm_90"}};
      SaveArtifact(dir + "/bandwidth.kiln", CompileGraph(y.ToGraph(), options));
      manifest << "bandwidth fused_elementwise_256MB bandwidth.kiln " << 4 * n * 4 << "\n";
    }
    for (const char* model : {"resnet18", "resnet50"}) {
      if (argc < 3) break;
      // Batch 64, the comparison with PyTorch eager on the same GPU. BatchNorm is
      // folded into the convolutions (parameters are constants while compiling), then
      // the parameter values are dropped: ResNet-50's 98 MB would not travel.
      constexpr int64_t kBatch = 64;
      const Graph graph = ImportOnnx(std::string(argv[2]) + "/" + model + ".onnx",
                                     OnnxImportOptions({{"input", {kBatch, 3, 224, 224}}}));
      CompileOptions options;
      options.cuda = CompileOptions::Cuda{{"sm_80", "sm_90"}};
      proto::ArtifactProto artifact = CompileGraph(graph, options);
      artifact.clear_param_values();
      const std::string name = std::string(model) + "_b64";
      SaveArtifact(dir + "/" + name + ".kiln", artifact);
      manifest << "timing " << name << " " << name << ".kiln " << kBatch << "\n";
    }
    std::printf("make_gpu_cases: %zu cases in %s (%zu operator cases left out: library routines)\n", cases, dir.c_str(),
                left_out);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_gpu_cases: %s\n", e.what());
    return 1;
  }
}
