// kiln's one exception type. Everything a user touches reports problems by throwing
// kiln::Error with a message naming the node, the argument, and the expected and
// given values.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace kiln {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// `text` for an error message: at most `max_chars` of it, with how much was left out, so
// that a 20,000-character attribute is not echoed in full; control bytes written as \n
// or \xNN, so that a name holding a NUL (a fuzzed gRPC request's) does not cut the
// message short, nor a newline split a log line.
inline std::string Abbreviate(std::string_view text, size_t max_chars = 64) {
  const std::string_view kept = text.substr(0, max_chars);
  std::string out;
  out.reserve(kept.size());
  for (const char c : kept) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (byte < 0x20 || byte == 0x7f) {
      constexpr char kHex[] = "0123456789abcdef";
      out += {'\\', 'x', kHex[byte >> 4], kHex[byte & 15]};
    } else {
      out += c;
    }
  }
  if (text.size() > max_chars) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

}  // namespace kiln
