#include "train/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace kiln {
namespace {

constexpr int kBarWidth = 24;
// Redraws at most this often: a fast epoch must not spend its time printing.
constexpr std::chrono::milliseconds kRedrawInterval{100};

std::string Fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

}  // namespace

ProgressBar::ProgressBar(std::string title, int64_t total_batches, std::FILE* out)
    : title_(std::move(title)),
      total_(total_batches),
      out_(out != nullptr ? out : stderr),
      interactive_(isatty(fileno(out_)) != 0),
      start_(std::chrono::steady_clock::now()) {}

std::string ProgressBar::FormatDuration(double seconds) {
  const auto total = static_cast<int64_t>(std::max(0.0, std::round(seconds)));
  const int64_t hours = total / 3600, minutes = total / 60 % 60, secs = total % 60;
  char text[64];
  if (hours > 0) {
    std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", static_cast<long long>(hours),
                  static_cast<long long>(minutes), static_cast<long long>(secs));
  } else {
    std::snprintf(text, sizeof text, "%lld:%02lld", static_cast<long long>(minutes), static_cast<long long>(secs));
  }
  return text;
}

std::string ProgressBar::Render(const std::string& title, int64_t batches, int64_t total, double samples_per_second,
                                const std::string& metrics, double eta_seconds) {
  std::string line = title;
  if (total > 0) {
    const int filled = static_cast<int>(kBarWidth * std::min<int64_t>(batches, total) / total);
    line += " [" + std::string(filled, '=') + (filled < kBarWidth ? ">" : "") +
            std::string(std::max(0, kBarWidth - filled - 1), ' ') + "] " + std::to_string(batches) + "/" +
            std::to_string(total);
  } else {
    line += " batch " + std::to_string(batches);
  }
  line += "  " + Fixed(samples_per_second, 0) + " samples/s";
  if (!metrics.empty()) line += "  " + metrics;
  if (eta_seconds >= 0) line += "  ETA " + FormatDuration(eta_seconds);
  return line;
}

void ProgressBar::Update(int64_t batches, int64_t samples, const std::string& metrics) {
  batches_ = batches;
  samples_ = samples;
  if (!interactive_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < kRedrawInterval && batches != total_) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(samples) / elapsed : 0;
  const double eta = total_ > 0 && batches > 0 ? elapsed / static_cast<double>(batches) *
                                                     static_cast<double>(std::max<int64_t>(total_ - batches, 0))
                                               : -1;
  // \r and "erase to the end of the line": the bar redraws in place.
  std::fprintf(out_, "\r%s\033[K", Render(title_, batches, total_, rate, metrics, eta).c_str());
  std::fflush(out_);
}

void ProgressBar::Finish(const std::string& metrics) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(samples_) / elapsed : 0;
  std::fprintf(out_, "%s%s  %s samples/s  time %s%s%s\n", interactive_ ? "\r\033[K" : "", title_.c_str(),
               Fixed(rate, 0).c_str(), FormatDuration(elapsed).c_str(), metrics.empty() ? "" : "  ", metrics.c_str());
  std::fflush(out_);
}

}  // namespace kiln
