// The IDX files of MNIST and Fashion-MNIST: a magic number 0x0000TTNN (TT the element
// type, NN the number of dimensions), NN big-endian uint32 dimensions, then the elements,
// big-endian and row-major. Files may be gzip-compressed (as the datasets ship): gzip is
// recognized by its magic bytes, never by the file name.
#pragma once

#include <string>
#include <string_view>

#include "runtime/tensor.h"

namespace kiln {

// The tensor an IDX file holds, in the file's element type: 0x08 uint8, 0x09 int8,
// 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64 (uint8 stays uint8; callers
// convert). A bad magic number, a truncated or corrupt file (compressed or not), and
// dimensions that overflow or disagree with the file's size throw kiln::Error naming
// `source`, what was expected and what was given.
Tensor ParseIdx(std::string_view bytes, const std::string& source = "<bytes>");
Tensor LoadIdx(const std::string& path);

// Where Debian 12's package dataset-fashion-mnist installs the four .gz files.
inline constexpr char kDebianFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

// One split of an MNIST-style dataset, as MXNet's examples feed SoftmaxOutput.
struct ImageClassificationSplit {
  Tensor images;  // float32 (N, 1, rows, cols), pixel values scaled to [0, 1]
  Tensor labels;  // float32 (N): class indices
};

// Reads `split` ("train" or "t10k") of Fashion-MNIST (or MNIST: same names and format)
// from `dir`: <split>-images-idx3-ubyte and <split>-labels-idx1-ubyte, each plain or
// with a .gz suffix. Throws kiln::Error when a file is missing or malformed, when the
// images are not uint8 (N, rows, cols) or the labels not uint8 (N).
ImageClassificationSplit LoadFashionMnist(const std::string& dir, const std::string& split);

}  // namespace kiln
