#include "runtime/proto_util.h"

#include <google/protobuf/stubs/logging.h>

#include <cstdlib>
#include <mutex>

namespace kiln {

void QuietProtobufLogs() {
  static std::once_flag once;
  std::call_once(once, [] {
    google::protobuf::SetLogHandler([](google::protobuf::LogLevel level, const char*, int, const std::string&) {
      if (level == google::protobuf::LOGLEVEL_FATAL) std::abort();
    });
  });
}

}  // namespace kiln
