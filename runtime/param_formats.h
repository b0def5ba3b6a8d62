// Parameter files in every format kiln reads and writes: its own (proto/tensor.proto's
// ParamFileProto), MXNet's NDArray lists (.params, nd.save) and NumPy's .npz archives.
// Reading goes by the file's first bytes, never its name; writing by the format asked
// for, or the output's extension.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "runtime/param_file.h"

namespace kiln {

enum class ParamFormat { kKiln, kMxnet, kNpz };

// "kiln", "mxnet", "npz".
const char* ParamFormatName(ParamFormat format);
// The format named `name`; nullopt for any other name.
std::optional<ParamFormat> ParamFormatFromName(std::string_view name);
// By extension: .npz -> npz, .params -> mxnet (MXNet's name for its files), .kiln-params
// -> kiln; nullopt for anything else.
std::optional<ParamFormat> ParamFormatForPath(const std::string& path);

// The format of a file image by its magic; nullopt when it is none of them.
std::optional<ParamFormat> DetectParamFormat(std::string_view bytes);

// Any of the formats; an unknown one is an error naming the three.
ParamList ParseAnyParams(std::string_view bytes, const std::string& source);
ParamList LoadAnyParams(const std::string& path);
// Atomically. A list (named = false) keeps its order; in .npz its arrays are named
// arr_0, arr_1, ... as np.savez names them.
void SaveParamsAs(const std::string& path, const ParamList& params, ParamFormat format);

}  // namespace kiln
