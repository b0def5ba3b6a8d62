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
// that a 20,000-character attribute is not echoed in full.
inline std::string Abbreviate(std::string_view text, size_t max_chars = 64) {
  if (text.size() <= max_chars) return std::string(text);
  return std::string(text.substr(0, max_chars)) + "... (" + std::to_string(text.size()) + " bytes)";
}

}  // namespace kiln
