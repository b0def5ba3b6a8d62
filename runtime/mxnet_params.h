// MXNet's NDArray-list file: what `mx.nd.save` writes, and what a checkpoint's
// `model-0000.params` (Module.save_checkpoint, HybridBlock.export) and Gluon's
// `save_parameters` hold. Read in every version MXNet wrote, written as MXNet 1.9.1
// writes it, byte for byte.
//
// The file (all integers little-endian):
//   u64 0x112 (the list magic), u64 0 (reserved)
//   u64 n, then n arrays
//   u64 m (0, or n: the names), then m times u64 length and the name's bytes
// An array:
//   u32 magic: 0xF993FAC9 (V2: storage types) or 0xF993FACA (V3: NumPy shape
//     semantics, where a 0-d array is a scalar and a dimension may be 0); 0xF993FAC8
//     (V1) and, before it, no magic at all (the first word is the dimension count)
//   V2/V3: i32 storage type (0 dense; 1 row_sparse and 2 csr are refused)
//   shape: V1-V3 i32 ndim then ndim i64 dimensions; legacy u32 ndim then u32 dimensions.
//     In V2 and earlier ndim 0 is an empty (none) array and nothing follows; in V3 an
//     ndim of -1 is.
//   i32 device type, i32 device id (the context it was saved from; ignored)
//   i32 dtype (MXNet's type flag, kiln's DType codes 0-7; int16, uint16..uint64 and
//     bfloat16 are refused), then the elements, C order.
// Names carry MXNet's prefixes as written ("arg:conv0_weight", "aux:bn0_moving_mean").
#pragma once

#include <string>
#include <string_view>

#include "runtime/param_file.h"

namespace kiln {

// True when `bytes` start with the NDArray-list magic.
bool LooksLikeMxnetParams(std::string_view bytes);

// Every array, dense, with its name (named = false for a list saved without names).
// Throws kiln::Error naming `source`, the array (index and name) and the field for
// anything malformed, truncated, sparse, none or of an unsupported dtype.
ParamList ParseMxnetParams(std::string_view bytes, const std::string& source = "<bytes>");

// The file MXNet 1.9.1 writes for these arrays: V2 (legacy shape semantics, CPU
// context), or V3 for every array when one of them is 0-d (V2 reads ndim 0 as "none";
// MXNet loads such a file under `npx.set_np()`, as `npx.save` writes it).
std::string SerializeMxnetParams(const ParamList& params);

ParamList LoadMxnetParams(const std::string& path);
// Atomically (a temporary file renamed into place).
void SaveMxnetParams(const std::string& path, const ParamList& params);

}  // namespace kiln
