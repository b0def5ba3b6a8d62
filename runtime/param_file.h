// Parameter files: named tensors in one file, like MXNet's nd.save / nd.load of a dict
// or a list. Format: proto/tensor.proto's ParamFileProto.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proto/tensor.pb.h"
#include "runtime/tensor.h"

namespace kiln {

// Tensor <-> TensorProto. FromProto checks the dtype and that the byte size matches the
// shape; `what` names the tensor in errors.
proto::TensorProto TensorToProto(const Tensor& tensor, const std::string& name);
Tensor TensorFromProto(const proto::TensorProto& proto, const std::string& what);

struct ParamList {
  bool named = true;
  std::vector<std::pair<std::string, Tensor>> tensors;  // in file order
  std::map<std::string, Tensor> AsMap() const;
};

std::string SerializeParams(const ParamList& params);
ParamList ParseParams(std::string_view bytes, const std::string& source = "<bytes>");

// A dict of named tensors (nd.save(path, {...})).
void SaveParams(const std::string& path, const std::map<std::string, Tensor>& params);
// A list of tensors (nd.save(path, [...])).
void SaveParamList(const std::string& path, const std::vector<Tensor>& tensors);
ParamList LoadParams(const std::string& path);

}  // namespace kiln
