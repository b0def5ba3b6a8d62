#include "runtime/param_formats.h"

#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/mxnet_params.h"
#include "runtime/npz.h"

namespace kiln {
namespace {

struct FormatName {
  ParamFormat format;
  const char* name;
};
constexpr FormatName kNames[] = {
    {ParamFormat::kKiln, "kiln"}, {ParamFormat::kMxnet, "mxnet"}, {ParamFormat::kNpz, "npz"}};

// A kiln parameter file is a ParamFileProto whose first field is the magic string.
constexpr std::string_view kKilnParamsStart("\x0a\x0bkiln.params", 13);

}  // namespace

const char* ParamFormatName(ParamFormat format) {
  for (const auto& entry : kNames) {
    if (entry.format == format) return entry.name;
  }
  return "unknown";
}

std::optional<ParamFormat> ParamFormatFromName(std::string_view name) {
  for (const auto& entry : kNames) {
    if (name == entry.name) return entry.format;
  }
  return std::nullopt;
}

std::optional<ParamFormat> ParamFormatForPath(const std::string& path) {
  if (path.ends_with(".npz")) return ParamFormat::kNpz;
  if (path.ends_with(".kiln-params")) return ParamFormat::kKiln;
  if (path.ends_with(".params")) return ParamFormat::kMxnet;
  return std::nullopt;
}

std::optional<ParamFormat> DetectParamFormat(std::string_view bytes) {
  if (LooksLikeMxnetParams(bytes)) return ParamFormat::kMxnet;
  if (LooksLikeNpz(bytes)) return ParamFormat::kNpz;
  if (bytes.starts_with(kKilnParamsStart)) return ParamFormat::kKiln;
  return std::nullopt;
}

ParamList ParseAnyParams(std::string_view bytes, const std::string& source) {
  const auto format = DetectParamFormat(bytes);
  if (!format) {
    throw Error("'" + source +
                "' is not a parameter file kiln reads: neither MXNet's (nd.save, .params), NumPy's .npz nor "
                "kiln's own");
  }
  switch (*format) {
    case ParamFormat::kMxnet: return ParseMxnetParams(bytes, source);
    case ParamFormat::kNpz: return ParseNpz(bytes, source);
    case ParamFormat::kKiln: break;
  }
  return ParseParams(bytes, source);
}

ParamList LoadAnyParams(const std::string& path) {
  return ParseAnyParams(FileBytes::Open(path)->bytes(), path);
}

void SaveParamsAs(const std::string& path, const ParamList& params, ParamFormat format) {
  switch (format) {
    case ParamFormat::kMxnet: return SaveMxnetParams(path, params);
    case ParamFormat::kNpz: return SaveNpz(path, params);
    case ParamFormat::kKiln: break;
  }
  WriteFileAtomic(path, SerializeParams(params));
}

}  // namespace kiln
