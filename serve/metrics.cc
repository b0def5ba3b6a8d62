#include "serve/metrics.h"

#include <fmt/format.h>

namespace kiln::serve {

namespace {

// Label values escape backslash, quote and newline.
std::string Escape(const std::string& value) {
  std::string out;
  for (const char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

void Metrics::RecordSuccess(const std::string& model, const std::string& version, double queue_seconds,
                            double compute_seconds, double total_seconds) {
  std::lock_guard lock(mutex_);
  ModelStats& stats = models_[{model, version}];
  stats.queue_seconds += queue_seconds;
  stats.compute_seconds += compute_seconds;
  stats.latency.Add(total_seconds, kBuckets);
}

void Metrics::RecordFailure(const std::string& model, const std::string& version) {
  std::lock_guard lock(mutex_);
  ++models_[{model, version}].failures;
}

void Metrics::RecordBatch(const std::string& model, const std::string& version, int64_t rows, int64_t batch_size) {
  std::lock_guard lock(mutex_);
  ModelStats& stats = models_[{model, version}];
  stats.batch_rows.Add(rows, kBatchBuckets);
  stats.padding_rows += static_cast<uint64_t>(batch_size - rows);
}

void Metrics::AddInFlight(int64_t delta) {
  std::lock_guard lock(mutex_);
  in_flight_ += delta;
}

std::string Metrics::Text() const {
  std::lock_guard lock(mutex_);
  std::string out;
  const auto family = [&](const char* name, const char* type, const char* help, const auto& value) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    for (const auto& [key, stats] : models_) {
      out += fmt::format("{}{{model=\"{}\",version=\"{}\"}} {}\n", name, Escape(key.first), Escape(key.second),
                         value(stats));
    }
  };
  family("kiln_inference_requests_total", "counter", "Inference requests answered with outputs.",
         [](const ModelStats& s) { return s.latency.count; });
  family("kiln_inference_failures_total", "counter", "Inference requests refused or failed.",
         [](const ModelStats& s) { return s.failures; });
  family("kiln_inference_queue_seconds_total", "counter", "Seconds requests waited for an execution slot.",
         [](const ModelStats& s) { return s.queue_seconds; });
  family("kiln_inference_compute_seconds_total", "counter", "Seconds spent running the model.",
         [](const ModelStats& s) { return s.compute_seconds; });
  // Every model's histogram `member`, leaving out the models with no values when
  // `skip_empty`.
  const auto histogram = [&](const char* name, const char* help, const auto member, const auto& bounds,
                             bool skip_empty) {
    out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
    for (const auto& [key, stats] : models_) {
      const auto& h = stats.*member;
      if (skip_empty && h.count == 0) continue;
      const std::string labels = fmt::format("model=\"{}\",version=\"{}\"", Escape(key.first), Escape(key.second));
      uint64_t cumulative = 0;
      for (size_t i = 0; i < bounds.size(); ++i) {
        cumulative += h.buckets[i];
        out += fmt::format("{}_bucket{{{},le=\"{}\"}} {}\n", name, labels, bounds[i], cumulative);
      }
      out += fmt::format("{}_bucket{{{},le=\"+Inf\"}} {}\n", name, labels, h.count);
      out += fmt::format("{}_sum{{{}}} {}\n{}_count{{{}}} {}\n", name, labels, h.sum, name, labels, h.count);
    }
  };
  histogram("kiln_inference_request_duration_seconds", "Time from a request's arrival to its response.",
            &ModelStats::latency, kBuckets, false);
  family("kiln_inference_padding_rows_total", "counter",
         "Zero rows that padded dynamic batches up to a compiled batch size.",
         [](const ModelStats& s) { return s.padding_rows; });
  histogram("kiln_inference_batch_rows", "Rows (requests' batch sizes summed) of each dynamic batch.",
            &ModelStats::batch_rows, kBatchBuckets, true);
  out += fmt::format(
      "# HELP kiln_inference_in_flight Inference requests being handled.\n"
      "# TYPE kiln_inference_in_flight gauge\nkiln_inference_in_flight {}\n",
      in_flight_);
  return out;
}

}  // namespace kiln::serve
