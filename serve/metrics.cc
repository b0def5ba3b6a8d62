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
  ++stats.requests;
  stats.queue_seconds += queue_seconds;
  stats.compute_seconds += compute_seconds;
  stats.total_seconds += total_seconds;
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (total_seconds <= kBuckets[i]) {
      ++stats.buckets[i];
      break;
    }
  }
}

void Metrics::RecordFailure(const std::string& model, const std::string& version) {
  std::lock_guard lock(mutex_);
  ++models_[{model, version}].failures;
}

void Metrics::RecordBatch(const std::string& model, const std::string& version, int64_t rows, int64_t batch_size) {
  std::lock_guard lock(mutex_);
  ModelStats& stats = models_[{model, version}];
  ++stats.batches;
  stats.batch_rows += static_cast<uint64_t>(rows);
  stats.padding_rows += static_cast<uint64_t>(batch_size - rows);
  for (size_t i = 0; i < kBatchBuckets.size(); ++i) {
    if (rows <= kBatchBuckets[i]) {
      ++stats.batch_buckets[i];
      break;
    }
  }
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
         [](const ModelStats& s) { return s.requests; });
  family("kiln_inference_failures_total", "counter", "Inference requests refused or failed.",
         [](const ModelStats& s) { return s.failures; });
  family("kiln_inference_queue_seconds_total", "counter", "Seconds requests waited for an execution slot.",
         [](const ModelStats& s) { return s.queue_seconds; });
  family("kiln_inference_compute_seconds_total", "counter", "Seconds spent running the model.",
         [](const ModelStats& s) { return s.compute_seconds; });
  out +=
      "# HELP kiln_inference_request_duration_seconds Time from a request's arrival to its response.\n"
      "# TYPE kiln_inference_request_duration_seconds histogram\n";
  for (const auto& [key, stats] : models_) {
    const std::string labels = fmt::format("model=\"{}\",version=\"{}\"", Escape(key.first), Escape(key.second));
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      cumulative += stats.buckets[i];
      out += fmt::format("kiln_inference_request_duration_seconds_bucket{{{},le=\"{}\"}} {}\n", labels, kBuckets[i],
                         cumulative);
    }
    out += fmt::format("kiln_inference_request_duration_seconds_bucket{{{},le=\"+Inf\"}} {}\n", labels, stats.requests);
    out += fmt::format("kiln_inference_request_duration_seconds_sum{{{}}} {}\n", labels, stats.total_seconds);
    out += fmt::format("kiln_inference_request_duration_seconds_count{{{}}} {}\n", labels, stats.requests);
  }
  family("kiln_inference_padding_rows_total", "counter",
         "Zero rows that padded dynamic batches up to a compiled batch size.",
         [](const ModelStats& s) { return s.padding_rows; });
  out +=
      "# HELP kiln_inference_batch_rows Rows (requests' batch sizes summed) of each dynamic batch.\n"
      "# TYPE kiln_inference_batch_rows histogram\n";
  for (const auto& [key, stats] : models_) {
    if (stats.batches == 0) continue;
    const std::string labels = fmt::format("model=\"{}\",version=\"{}\"", Escape(key.first), Escape(key.second));
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kBatchBuckets.size(); ++i) {
      cumulative += stats.batch_buckets[i];
      out += fmt::format("kiln_inference_batch_rows_bucket{{{},le=\"{}\"}} {}\n", labels, kBatchBuckets[i], cumulative);
    }
    out += fmt::format("kiln_inference_batch_rows_bucket{{{},le=\"+Inf\"}} {}\n", labels, stats.batches);
    out += fmt::format("kiln_inference_batch_rows_sum{{{}}} {}\n", labels, stats.batch_rows);
    out += fmt::format("kiln_inference_batch_rows_count{{{}}} {}\n", labels, stats.batches);
  }
  out += fmt::format(
      "# HELP kiln_inference_in_flight Inference requests being handled.\n"
      "# TYPE kiln_inference_in_flight gauge\nkiln_inference_in_flight {}\n",
      in_flight_);
  return out;
}

}  // namespace kiln::serve
