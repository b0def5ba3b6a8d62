// NumPy's .npz archives (np.savez, np.savez_compressed): a zip archive of NAME.npy
// members, read and written with libzip. Members may be stored or deflated; kiln writes
// them stored, as np.savez does.
#pragma once

#include <string>
#include <string_view>

#include "runtime/param_file.h"

namespace kiln {

// True when `bytes` start like a zip archive ("PK\3\4").
bool LooksLikeNpz(std::string_view bytes);

// Every member in archive order, named without its ".npy". Throws kiln::Error naming
// `source` and the member for a damaged archive, a member that is not a .npy file, or
// an array .npy files cannot hold for kiln (see runtime/npy.h).
ParamList ParseNpz(std::string_view bytes, const std::string& source = "<bytes>");
std::string SerializeNpz(const ParamList& params);

ParamList LoadNpz(const std::string& path);
// Atomically (a temporary file renamed into place).
void SaveNpz(const std::string& path, const ParamList& params);

}  // namespace kiln
