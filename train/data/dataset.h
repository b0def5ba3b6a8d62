// Datasets and batching with MXNet 1.9.1's semantics: Gluon's Dataset, ArrayDataset and
// DataLoader (mxnet.gluon.data) for training loops, and mx.io.NDArrayIter for the Module
// API. Shuffling is seeded: a std::mt19937_64 seeded from (seed, epoch) through
// std::seed_seq and kiln's own Fisher-Yates draws, so an epoch's order depends only on
// the seed and the epoch's number, with every standard library.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "runtime/tensor.h"

namespace kiln {

// A batch: each field of its samples stacked along a new first axis.
using Batch = std::vector<Tensor>;

// Rows `rows` of `array` along its first axis, in that order: a new tensor of shape
// (rows.size(), array.shape[1:]). Throws kiln::Error for a row out of range.
Tensor GatherRows(const Tensor& array, std::span<const int64_t> rows);

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // Sample `index`'s fields (an image and its label, say). The DataLoader calls Get and
  // GetBatch from its background thread: they must not change shared state unguarded.
  virtual std::vector<Tensor> Get(int64_t index) const = 0;
  // The samples at `indices`, each field stacked along a new first axis. By default the
  // stacked Get(i); the samples must agree in their number of fields and in each field's
  // shape and dtype (kiln::Error naming the first that does not).
  virtual Batch GetBatch(std::span<const int64_t> indices) const;
};

// Gluon's ArrayDataset: sample i is row i of every array.
class ArrayDataset final : public Dataset {
 public:
  // At least one array, each with a first (sample) axis, all of one length.
  explicit ArrayDataset(std::vector<Tensor> arrays);
  int64_t size() const override { return size_; }
  std::vector<Tensor> Get(int64_t index) const override;
  // Copies the rows straight from the arrays.
  Batch GetBatch(std::span<const int64_t> indices) const override;

 private:
  std::vector<Tensor> arrays_;
  int64_t size_ = 0;
};

// Gluon's DataLoader over a dataset: batches of `batch_size` samples, in order or
// shuffled anew each epoch. `last_batch` says what becomes of a last, incomplete batch:
// "keep" returns it, "discard" drops it, "rollover" carries its samples into the first
// batch of the next epoch (Gluon's BatchSampler: only from an epoch iterated to its end).
// With `prefetch`, a background thread assembles the next batch while the caller uses
// the current one; the batches are the same either way. An exception thrown while
// assembling a batch is rethrown by the Next() that would have returned it.
//
// Iterate an epoch either way:
//   for (Batch& batch : loader) ...            // begin() starts the next epoch
//   loader.Reset(); while (auto batch = loader.Next()) ...
// One thread iterates a loader; the destructor stops and joins the background thread.
class DataLoader {
 public:
  enum class LastBatch { kKeep, kDiscard, kRollover };

  DataLoader(std::shared_ptr<const Dataset> dataset, int64_t batch_size, bool shuffle = false,
             std::string_view last_batch = "keep", uint64_t seed = 0, bool prefetch = true);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // Starts the next epoch (the first call starts epoch 0), abandoning the current one.
  void Reset();
  // The current epoch's next batch; nullopt at its end. On a new loader it starts epoch 0.
  std::optional<Batch> Next();

  // The number of batches of the current epoch (of the first, before it has started).
  int64_t size() const;
  // The current epoch's number: -1 before the first.
  int64_t epoch() const;

  class Iterator {
   public:
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;

    Iterator() = default;
    Batch& operator*() { return *batch_; }
    Batch* operator->() { return &*batch_; }
    Iterator& operator++() {
      batch_ = loader_->Next();
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const { return !batch_.has_value(); }

   private:
    friend class DataLoader;
    explicit Iterator(DataLoader* loader) : loader_(loader), batch_(loader->Next()) {}
    DataLoader* loader_ = nullptr;
    std::optional<Batch> batch_;
  };
  Iterator begin();
  std::default_sentinel_t end() const { return {}; }

 private:
  // One epoch's order of samples: batch i is order[i * batch_size, (i + 1) * batch_size),
  // the last one shorter under "keep"; under "rollover" what follows the last batch is
  // carried into the next epoch.
  struct Epoch {
    std::vector<int64_t> order;
    int64_t num_batches = 0;
  };
  // A batch the background thread assembled, or what it threw.
  struct Prepared {
    Batch batch;
    std::exception_ptr error;
  };

  int64_t CountBatches(int64_t num_samples) const;
  Batch Assemble(const Epoch& epoch, int64_t index) const;
  void BeginEpochLocked();
  void PrepareAhead(std::stop_token stop);

  const std::shared_ptr<const Dataset> dataset_;
  const int64_t batch_size_;
  const bool shuffle_;
  const LastBatch last_batch_;
  const uint64_t seed_;
  const bool prefetch_;

  mutable std::mutex mutex_;
  std::condition_variable_any work_available_;  // the background thread waits on it
  std::condition_variable batch_ready_;         // Next() waits on it
  // Guarded by mutex_:
  int64_t epoch_number_ = -1;
  std::shared_ptr<const Epoch> epoch_;
  int64_t position_ = 0;              // the batch Next() returns next
  std::optional<Prepared> prepared_;  // batch `position_`, once the background thread has it

  std::jthread worker_;  // last: stopped and joined before the members it uses go
};

// A named array of an NDArrayIter, and the name, batch shape and dtype it provides
// (MXNet's DataDesc, layout NCHW: the batch axis first).
struct NamedArray {
  std::string name;
  Tensor array;
};
struct DataDesc {
  std::string name;
  Shape shape;
  DType dtype = DType::kFloat32;
};
// MXNet's DataBatch: `pad` samples at the end of this batch are not real ones.
struct DataBatch {
  std::vector<Tensor> data;
  std::vector<Tensor> label;
  int64_t pad = 0;
};

// mx.io.NDArrayIter: batches of `batch_size` rows of every data and label array, in order
// or shuffled (at construction and at every reset, as MXNet does). The last batch follows
// `last_batch_handle`:
//   "pad"       fills it with samples from the start (again and again when the data is
//               shorter than a batch); `pad` says how many;
//   "discard"   drops it;
//   "roll_over" holds it back: after Reset() the first batch is those samples followed
//               by the first of the new epoch, and reports them as its `pad` (MXNet's
//               behaviour: meant for training, where pad is ignored). Needs batch_size
//               <= the number of samples (MXNet fails on the second epoch otherwise).
class NDArrayIter {
 public:
  enum class LastBatchHandle { kPad, kDiscard, kRollOver };

  // At least one data array; labels may be none. All arrays agree in their first axis.
  NDArrayIter(std::vector<NamedArray> data, std::vector<NamedArray> label, int64_t batch_size, bool shuffle = false,
              std::string_view last_batch_handle = "pad", uint64_t seed = 0);
  // MXNet's defaults: the data named "data", the label "softmax_label" (none when
  // `label` is undefined).
  NDArrayIter(Tensor data, Tensor label, int64_t batch_size, bool shuffle = false,
              std::string_view last_batch_handle = "pad", uint64_t seed = 0);

  // The next batch; nullopt at the end of the epoch.
  std::optional<DataBatch> Next();
  // The next epoch (reshuffled when shuffling), keeping roll_over's held-back samples.
  void Reset();
  // The next epoch without the held-back samples.
  void HardReset();

  std::vector<DataDesc> provide_data() const { return Describe(data_); }
  std::vector<DataDesc> provide_label() const { return Describe(label_); }
  int64_t batch_size() const { return batch_size_; }
  int64_t num_data() const { return num_data_; }

 private:
  std::vector<DataDesc> Describe(const std::vector<NamedArray>& arrays) const;
  std::vector<int64_t> BatchSamples();
  int64_t Pad() const;
  void DrawOrder();

  std::vector<NamedArray> data_;
  std::vector<NamedArray> label_;
  int64_t batch_size_;
  bool shuffle_;
  LastBatchHandle last_batch_handle_;
  uint64_t seed_;
  int64_t num_data_ = 0;
  int64_t epoch_ = 0;
  std::vector<int64_t> order_;  // the epoch's samples in order
  // MXNet's cursor: the position in order_ of the batch's first sample; negative for a
  // batch that begins with held-back samples.
  int64_t cursor_ = 0;
  std::vector<int64_t> held_back_;  // roll_over's incomplete last batch (MXNet's _cache_data)
};

}  // namespace kiln
