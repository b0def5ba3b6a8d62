// NumPy .npy files (format versions 1, 2 and 3; C order; little-endian). Supported
// dtypes: float32, float64, float16, int8, int32, int64, uint8, bool.
#pragma once

#include <string>
#include <string_view>

#include "runtime/tensor.h"

namespace kiln {

Tensor ParseNpy(std::string_view bytes, const std::string& source = "<bytes>");
std::string SerializeNpy(const Tensor& tensor);

Tensor LoadNpy(const std::string& path);
// Atomic: temporary file, then rename.
void SaveNpy(const std::string& path, const Tensor& tensor);

}  // namespace kiln
