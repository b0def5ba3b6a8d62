// kiln's one exception type. Everything a user touches reports problems by throwing
// kiln::Error with a message naming the node, the argument, and the expected and
// given values.
#pragma once

#include <stdexcept>
#include <string>

namespace kiln {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace kiln
