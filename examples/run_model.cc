// Runs a compiled model in your own program: load, set input, run, read output.
//   run_model MODEL.kiln INPUT.npy
#include <iostream>

#include "runtime/executor.h"
#include "runtime/npy.h"

int main(int argc, char** argv) {
  if (argc != 3) return std::cerr << "usage: run_model MODEL.kiln INPUT.npy\n", 2;
  try {
    const auto model = kiln::Executor::Load(argv[1]);
    const kiln::Tensor input = kiln::LoadNpy(argv[2]);
    const std::vector<kiln::Tensor> outputs = model->Run({{model->inputs()[0].name, input}});
    const kiln::Tensor& out = outputs[0];
    std::cout << model->outputs()[0].name << " " << kiln::ShapeToString(out.shape()) << ":";
    for (int64_t i = 0; i < out.size() && i < 10; ++i) std::cout << " " << out.data_as<float>()[i];
    std::cout << "\n";
  } catch (const std::exception& e) {
    return std::cerr << "run_model: " << e.what() << "\n", 1;
  }
}
