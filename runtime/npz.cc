#include "runtime/npz.h"

#include <zip.h>

#include <memory>
#include <set>

#include "runtime/error.h"
#include "runtime/file_util.h"
#include "runtime/npy.h"

namespace kiln {
namespace {

struct SourceFree {
  void operator()(zip_source_t* source) const { zip_source_free(source); }
};
struct ArchiveDiscard {
  void operator()(zip_t* archive) const { zip_discard(archive); }
};
struct FileClose {
  void operator()(zip_file_t* file) const { zip_fclose(file); }
};
using Source = std::unique_ptr<zip_source_t, SourceFree>;
using Archive = std::unique_ptr<zip_t, ArchiveDiscard>;
using File = std::unique_ptr<zip_file_t, FileClose>;

// libzip's error as text; frees it.
std::string Describe(zip_error_t* error) {
  std::string text = zip_error_strerror(error);
  zip_error_fini(error);
  return text;
}

std::string ArchiveError(zip_t* archive) {
  return zip_strerror(archive);
}

}  // namespace

// An archive without members: only the end-of-central-directory record (libzip writes
// no file at all for one, NumPy and Python's zipfile this).
const std::string_view kEmptyArchive("PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 22);

bool LooksLikeNpz(std::string_view bytes) {
  return bytes.starts_with(std::string_view("PK\x03\x04", 4)) || bytes == kEmptyArchive;
}

ParamList ParseNpz(std::string_view bytes, const std::string& source) {
  const std::string where = "'" + source + "'";
  if (bytes == kEmptyArchive) return {};
  zip_error_t error;
  zip_error_init(&error);
  Source buffer(zip_source_buffer_create(bytes.data(), bytes.size(), 0, &error));
  if (!buffer) throw Error(where + ": " + Describe(&error));
  Archive archive(zip_open_from_source(buffer.get(), ZIP_RDONLY | ZIP_CHECKCONS, &error));
  if (!archive) throw Error(where + " is not a readable .npz (zip) archive: " + Describe(&error));
  zip_source_keep(buffer.get());  // the archive took a reference; ours is freed by `buffer`
  zip_error_fini(&error);

  ParamList params;
  std::set<std::string, std::less<>> seen;
  const zip_int64_t count = zip_get_num_entries(archive.get(), 0);
  for (zip_int64_t i = 0; i < count; ++i) {
    zip_stat_t stat;
    zip_stat_init(&stat);
    if (zip_stat_index(archive.get(), static_cast<zip_uint64_t>(i), 0, &stat) != 0) {
      throw Error(where + ": member " + std::to_string(i) + ": " + ArchiveError(archive.get()));
    }
    const std::string member = (stat.valid & ZIP_STAT_NAME) != 0 ? stat.name : std::to_string(i);
    const std::string what = where + ": member '" + Abbreviate(member) + "'";
    if (!member.ends_with(".npy")) throw Error(what + " is not a .npy file");
    if ((stat.valid & ZIP_STAT_SIZE) == 0 || stat.size > kMaxTensorBytes) {
      throw Error(what + " has no size or one beyond kiln's limit");
    }
    File file(zip_fopen_index(archive.get(), static_cast<zip_uint64_t>(i), 0));
    if (!file) throw Error(what + ": " + ArchiveError(archive.get()));
    std::string contents(static_cast<size_t>(stat.size), '\0');
    const zip_int64_t read = zip_fread(file.get(), contents.data(), stat.size);
    if (read < 0 || static_cast<zip_uint64_t>(read) != stat.size) {
      throw Error(what + " is damaged: " + zip_file_strerror(file.get()));
    }
    std::string name = member.substr(0, member.size() - 4);
    if (!seen.insert(name).second) throw Error(what + " appears twice");
    Tensor tensor = ParseNpy(contents, source + ":" + member);
    params.tensors.emplace_back(std::move(name), std::move(tensor));
  }
  return params;
}

std::string SerializeNpz(const ParamList& params) {
  if (params.tensors.empty()) return std::string(kEmptyArchive);
  zip_error_t error;
  zip_error_init(&error);
  Source buffer(zip_source_buffer_create(nullptr, 0, 0, &error));
  if (!buffer) throw Error("cannot make an .npz archive: " + Describe(&error));
  Archive archive(zip_open_from_source(buffer.get(), ZIP_TRUNCATE, &error));
  if (!archive) throw Error("cannot make an .npz archive: " + Describe(&error));
  zip_source_keep(buffer.get());  // read back after the archive closes
  zip_error_fini(&error);

  // The members' bytes must live until zip_close writes them.
  std::vector<std::string> members;
  members.reserve(params.tensors.size());
  for (size_t i = 0; i < params.tensors.size(); ++i) {
    const auto& [name, tensor] = params.tensors[i];
    // np.savez names the members of a list arr_0, arr_1, ...
    const std::string member = (params.named ? name : "arr_" + std::to_string(i)) + ".npy";
    try {
      members.push_back(SerializeNpy(tensor));
    } catch (const Error& e) {
      throw Error("cannot add '" + member + "': " + e.what());
    }
    zip_source_t* data = zip_source_buffer(archive.get(), members.back().data(), members.back().size(), 0);
    if (data == nullptr) throw Error("cannot add '" + member + "': " + ArchiveError(archive.get()));
    const zip_int64_t index = zip_file_add(archive.get(), member.c_str(), data, ZIP_FL_ENC_UTF_8);
    if (index < 0) {
      zip_source_free(data);
      throw Error("cannot add '" + member + "': " + ArchiveError(archive.get()));
    }
    zip_set_file_compression(archive.get(), static_cast<zip_uint64_t>(index), ZIP_CM_STORE, 0);
  }
  if (zip_close(archive.get()) != 0) throw Error("cannot write the .npz archive: " + ArchiveError(archive.get()));
  archive.release();  // closed

  zip_stat_t stat;
  zip_stat_init(&stat);
  if (zip_source_stat(buffer.get(), &stat) != 0 || zip_source_open(buffer.get()) != 0) {
    throw Error("cannot read back the .npz archive");
  }
  std::string out(static_cast<size_t>(stat.size), '\0');
  const zip_int64_t read = zip_source_read(buffer.get(), out.data(), stat.size);
  zip_source_close(buffer.get());
  if (read < 0 || static_cast<zip_uint64_t>(read) != stat.size) throw Error("cannot read back the .npz archive");
  return out;
}

ParamList LoadNpz(const std::string& path) {
  return ParseNpz(FileBytes::Open(path)->bytes(), path);
}

void SaveNpz(const std::string& path, const ParamList& params) {
  WriteFileAtomic(path, SerializeNpz(params));
}

}  // namespace kiln
