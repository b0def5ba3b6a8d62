// The progress of a training epoch on the terminal: a bar redrawn in place with the
// batch, samples/s, the metrics and the time left when stderr is a terminal; one line
// at the end of the epoch otherwise (logs stay readable).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace kiln {

class ProgressBar {
 public:
  // `total_batches` <= 0: unknown (no bar, no ETA). `out` defaults to stderr.
  ProgressBar(std::string title, int64_t total_batches, std::FILE* out = nullptr);
  // After each batch: the batches and samples done so far and the metrics' text.
  void Update(int64_t batches, int64_t samples, const std::string& metrics);
  // The epoch's summary line (always printed).
  void Finish(const std::string& metrics);

  // "0:42", "1:02:03".
  static std::string FormatDuration(double seconds);
  // The bar's text for a state, without the terminal's control characters (tests).
  static std::string Render(const std::string& title, int64_t batches, int64_t total, double samples_per_second,
                            const std::string& metrics, double eta_seconds);

 private:
  std::string title_;
  int64_t total_;
  std::FILE* out_;
  bool interactive_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_{};
  int64_t batches_ = 0;
  int64_t samples_ = 0;
};

}  // namespace kiln
