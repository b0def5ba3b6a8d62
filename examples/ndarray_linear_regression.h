// The seed tutorial's linear regression trained by hand with the NDArray API: synthetic
// features and labels, a shuffling data_iter, net, square_loss and sgd, as in MXNet's
// NDArray code. examples/ndarray_linear_regression.cc prints it; tests/ndarray runs it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

#include "ndarray/autograd.h"
#include "ndarray/ndarray.h"
#include "ndarray/ops_api.h"

namespace kiln::examples {

struct LinearRegressionResult {
  std::vector<double> epoch_losses;  // mean square loss over all examples, per epoch
  std::vector<double> w;
  double b = 0;
};

inline nd::NDArray net(const nd::NDArray& X, const nd::NDArray& w, const nd::NDArray& b) {
  return nd::dot(X, w) + b;
}

inline nd::NDArray square_loss(const nd::NDArray& y_hat, const nd::NDArray& y) {
  return nd::square(y_hat - y.Reshape(y_hat.shape())) / 2;
}

// param[:] = param - lr * param.grad / batch_size
inline void sgd(const std::vector<nd::NDArray>& params, double lr, int64_t batch_size) {
  for (nd::NDArray param : params) param.Assign(param - lr * param.Grad() / static_cast<double>(batch_size));
}

// Calls `body(X, y)` for shuffled batches of `batch_size` rows (the last may be short).
inline void data_iter(int64_t batch_size, const nd::NDArray& features, const nd::NDArray& labels, std::mt19937& rng,
                      const std::function<void(const nd::NDArray&, const nd::NDArray&)>& body) {
  const int64_t num_examples = features.shape()[0];
  std::vector<int64_t> indices(static_cast<size_t>(num_examples));
  std::iota(indices.begin(), indices.end(), 0);
  std::shuffle(indices.begin(), indices.end(), rng);
  for (int64_t begin = 0; begin < num_examples; begin += batch_size) {
    const int64_t end = std::min(begin + batch_size, num_examples);
    const nd::NDArray j = nd::array(std::vector<float>(indices.begin() + begin, indices.begin() + end), {end - begin});
    body(nd::take(features, j), nd::take(labels, j));
  }
}

// 1000 examples of y = X [2, -3.4]^T + 4.2 + noise(0.01), trained for `epochs` epochs.
inline LinearRegressionResult TrainLinearRegression(int epochs = 3, double lr = 0.03, int64_t batch_size = 10,
                                                    uint64_t seed = 1) {
  const int64_t num_examples = 1000;
  const std::vector<float> true_w = {2, -3.4f};
  const float true_b = 4.2f;
  nd::random::seed(seed);
  const nd::NDArray features = nd::random::normal(0, 1, {num_examples, 2});
  const nd::NDArray labels = nd::dot(features, nd::array(true_w, {2, 1})).Reshape({num_examples}) + true_b +
                             nd::random::normal(0, 0.01, {num_examples});

  nd::NDArray w = nd::random::normal(0, 0.01, {2, 1});
  nd::NDArray b = nd::zeros({1});
  w.AttachGrad();
  b.AttachGrad();
  std::mt19937 rng(static_cast<uint32_t>(seed));
  LinearRegressionResult result;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    data_iter(batch_size, features, labels, rng, [&](const nd::NDArray& X, const nd::NDArray& y) {
      nd::NDArray l;
      {
        nd::autograd::Record record;
        l = square_loss(net(X, w, b), y);
      }
      l.Backward();
      sgd({w, b}, lr, batch_size);
    });
    result.epoch_losses.push_back(nd::mean(square_loss(net(features, w, b), labels)).AsScalar<double>());
  }
  result.w = w.tensor().ToDoubles();
  result.b = b.AsScalar<double>();
  return result;
}

}  // namespace kiln::examples
