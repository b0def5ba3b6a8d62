// Whole-file reads and crash-safe writes.
#pragma once

#include <string>
#include <string_view>

namespace kiln {

// Reads a file; throws kiln::Error naming the path when it cannot.
std::string ReadFile(const std::string& path);

// Writes to a temporary file beside `path`, flushes it to disk and renames it over
// `path`, so a crash leaves either the old file or the new one, never half of one.
void WriteFileAtomic(const std::string& path, std::string_view bytes);

}  // namespace kiln
