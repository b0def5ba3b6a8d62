#pragma once

namespace kiln {
// Protobuf logs parse problems (such as invalid UTF-8 in a string field) to stderr.
// kiln reports every bad file itself with a clear error, so those logs are dropped.
// Idempotent and thread-safe.
void QuietProtobufLogs();
}  // namespace kiln
