// The server's Prometheus metrics (text exposition format 0.0.4): per model and version,
// requests and failures, time waiting for an execution slot and computing, a histogram
// of request latency, dynamic batches and a histogram of their rows; and the requests in
// flight.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace kiln::serve {

// Seconds of the steady clock, as the metrics record them.
using SteadyClock = std::chrono::steady_clock;
inline double Seconds(SteadyClock::duration elapsed) {
  return std::chrono::duration<double>(elapsed).count();
}
inline double SecondsSince(SteadyClock::time_point start) {
  return Seconds(SteadyClock::now() - start);
}

// A Prometheus histogram over fixed bucket bounds: counts per bucket (made cumulative when
// written), the count and the sum of the values.
template <typename T, size_t N>
struct Histogram {
  std::array<uint64_t, N> buckets{};
  uint64_t count = 0;
  T sum{};
  void Add(T value, const std::array<T, N>& bounds) {
    ++count;
    sum += value;
    for (size_t i = 0; i < N; ++i) {
      if (value <= bounds[i]) {
        ++buckets[i];
        return;
      }
    }
  }
};

class Metrics {
 public:
  // Latency histogram bounds in seconds (Prometheus' "le" labels).
  static constexpr std::array<double, 12> kBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                      0.01,   0.025,   0.05,   0.1,   0.25,   1.0};

  // Batch-size histogram bounds (rows of a dynamic batch).
  static constexpr std::array<int64_t, 9> kBatchBuckets = {1, 2, 4, 8, 16, 32, 64, 128, 256};

  void RecordSuccess(const std::string& model, const std::string& version, double queue_seconds, double compute_seconds,
                     double total_seconds);
  void RecordFailure(const std::string& model, const std::string& version);
  // One dynamic batch: the rows its requests held, run as batch size `batch_size`.
  void RecordBatch(const std::string& model, const std::string& version, int64_t rows, int64_t batch_size);
  void AddInFlight(int64_t delta);
  // Counts a request in flight for its scope.
  class InFlightGuard {
   public:
    explicit InFlightGuard(Metrics& metrics) : metrics_(metrics) { metrics_.AddInFlight(1); }
    ~InFlightGuard() { metrics_.AddInFlight(-1); }
    InFlightGuard(const InFlightGuard&) = delete;
    InFlightGuard& operator=(const InFlightGuard&) = delete;

   private:
    Metrics& metrics_;
  };
  std::string Text() const;

 private:
  struct ModelStats {
    uint64_t failures = 0;
    double queue_seconds = 0;
    double compute_seconds = 0;
    Histogram<double, kBuckets.size()> latency;           // its count: the requests answered
    Histogram<int64_t, kBatchBuckets.size()> batch_rows;  // its count: the dynamic batches
    uint64_t padding_rows = 0;
  };
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, ModelStats> models_;
  int64_t in_flight_ = 0;
};

}  // namespace kiln::serve
