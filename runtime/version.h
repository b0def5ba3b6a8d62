#pragma once

namespace kiln {
// The kiln release; written into every graph and artifact as the producer.
inline constexpr const char kKilnVersion[] = "0.1.0";
}  // namespace kiln
