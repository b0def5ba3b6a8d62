// The seed tutorial's linear regression written by hand with the NDArray API
// (examples/ndarray_linear_regression.h): prints the loss per epoch and the recovered
// w and b beside the true ones.
#include "examples/ndarray_linear_regression.h"

#include <cstdio>

int main() {
  const kiln::examples::LinearRegressionResult result = kiln::examples::TrainLinearRegression();
  for (size_t epoch = 0; epoch < result.epoch_losses.size(); ++epoch) {
    std::printf("epoch %zu, loss %.6f\n", epoch + 1, result.epoch_losses[epoch]);
  }
  std::printf("w = [%.4f, %.4f] (true [2, -3.4]), b = %.4f (true 4.2)\n", result.w[0], result.w[1], result.b);
  return 0;
}
