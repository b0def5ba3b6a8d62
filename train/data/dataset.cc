#include "train/data/dataset.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <utility>

#include "runtime/error.h"

namespace kiln {
namespace {

// Uniform in [0, bound) without modulo bias: draws below 2^64 mod bound are redrawn.
// (std::uniform_int_distribution's algorithm is left to the library.)
uint64_t UniformBelow(std::mt19937_64& rng, uint64_t bound) {
  const uint64_t rejected = (0 - bound) % bound;
  uint64_t draw = rng();
  while (draw < rejected) draw = rng();
  return draw % bound;
}

// 0..n-1 in epoch `epoch`'s order for `seed`: Fisher-Yates from an engine seeded with
// both, so any epoch's order can be had without replaying the ones before it.
std::vector<int64_t> EpochPermutation(int64_t n, uint64_t seed, int64_t epoch) {
  const auto e = static_cast<uint64_t>(epoch);
  std::seed_seq seeds{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(e),
                      static_cast<uint32_t>(e >> 32)};
  std::mt19937_64 rng(seeds);
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  for (int64_t i = n - 1; i > 0; --i) {
    std::swap(order[i], order[UniformBelow(rng, static_cast<uint64_t>(i) + 1)]);
  }
  return order;
}

std::vector<int64_t> Identity(int64_t n) {
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  return order;
}

void CheckBatchSize(const char* who, int64_t batch_size) {
  if (batch_size <= 0) {
    throw Error(std::string(who) + ": expected a batch size >= 1, given " + std::to_string(batch_size));
  }
}

// The shape of one sample of `array` (its shape without the first axis).
Shape SampleShape(const Tensor& array) {
  return Shape(array.shape().begin() + 1, array.shape().end());
}

// `arrays` as the sample-major arrays of a dataset: each defined, with a first axis, all
// of one length, which is returned. `describe(i)` names array i in messages.
template <typename Describe>
int64_t CheckSampleArrays(const std::string& who, const std::vector<const Tensor*>& arrays, Describe describe) {
  int64_t length = 0;
  for (size_t i = 0; i < arrays.size(); ++i) {
    const Tensor& array = *arrays[i];
    if (!array.defined() || array.ndim() == 0) {
      throw Error(who + ": expected " + describe(i) + " to have a first (sample) axis, given " +
                  (array.defined() ? "a scalar" : "an undefined tensor"));
    }
    if (i == 0) {
      length = array.shape()[0];
    } else if (array.shape()[0] != length) {
      throw Error(who + ": expected every array to have " + std::to_string(length) + " samples (as " + describe(0) +
                  " of shape " + ShapeToString(arrays[0]->shape()) + " has), given " + describe(i) + " of shape " +
                  ShapeToString(array.shape()));
    }
  }
  return length;
}

}  // namespace

Tensor GatherRows(const Tensor& array, std::span<const int64_t> rows) {
  if (array.ndim() == 0) throw Error("GatherRows: expected an array with a first axis, given a scalar");
  Shape shape = array.shape();
  const int64_t num_rows = shape[0];
  shape[0] = static_cast<int64_t>(rows.size());
  Tensor gathered(shape, array.dtype());
  const size_t row_bytes = num_rows == 0 ? 0 : array.nbytes() / static_cast<size_t>(num_rows);
  const auto* source = static_cast<const char*>(array.data());
  auto* out = static_cast<char*>(gathered.data());
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] < 0 || rows[i] >= num_rows) {
      throw Error("GatherRows: expected rows in [0, " + std::to_string(num_rows) + ") of an array of shape " +
                  ShapeToString(array.shape()) + ", given row " + std::to_string(rows[i]));
    }
    if (row_bytes != 0) std::memcpy(out + i * row_bytes, source + static_cast<size_t>(rows[i]) * row_bytes, row_bytes);
  }
  return gathered;
}

Batch Dataset::GetBatch(std::span<const int64_t> indices) const {
  if (indices.empty()) return {};
  std::vector<std::vector<Tensor>> samples;
  samples.reserve(indices.size());
  for (const int64_t index : indices) samples.push_back(Get(index));

  const std::vector<Tensor>& first = samples.front();
  Batch batch;
  for (size_t field = 0; field < first.size(); ++field) {
    Shape shape = first[field].shape();
    shape.insert(shape.begin(), static_cast<int64_t>(indices.size()));
    batch.emplace_back(shape, first[field].dtype());
  }
  for (size_t s = 0; s < samples.size(); ++s) {
    const std::vector<Tensor>& sample = samples[s];
    const std::string where = "Dataset::GetBatch: sample " + std::to_string(indices[s]);
    if (sample.size() != first.size()) {
      throw Error(where + ": expected " + std::to_string(first.size()) + " fields (as sample " +
                  std::to_string(indices[0]) + " has), given " + std::to_string(sample.size()));
    }
    for (size_t field = 0; field < sample.size(); ++field) {
      const Tensor& value = sample[field];
      if (value.shape() != first[field].shape() || value.dtype() != first[field].dtype()) {
        throw Error(where + " field " + std::to_string(field) + ": expected " +
                    std::string(DTypeName(first[field].dtype())) + " " + ShapeToString(first[field].shape()) +
                    " (as sample " + std::to_string(indices[0]) + " has), given " +
                    std::string(DTypeName(value.dtype())) + " " + ShapeToString(value.shape()));
      }
      if (value.nbytes() != 0) {
        std::memcpy(static_cast<char*>(batch[field].data()) + s * value.nbytes(), value.data(), value.nbytes());
      }
    }
  }
  return batch;
}

ArrayDataset::ArrayDataset(std::vector<Tensor> arrays) : arrays_(std::move(arrays)) {
  if (arrays_.empty()) throw Error("ArrayDataset: expected at least one array, given none");
  std::vector<const Tensor*> pointers;
  for (const Tensor& array : arrays_) pointers.push_back(&array);
  size_ = CheckSampleArrays("ArrayDataset", pointers, [](size_t i) { return "array " + std::to_string(i); });
}

std::vector<Tensor> ArrayDataset::Get(int64_t index) const {
  const int64_t rows[] = {index};
  std::vector<Tensor> sample;
  for (const Tensor& array : arrays_) sample.push_back(GatherRows(array, rows).Reshaped(SampleShape(array)));
  return sample;
}

Batch ArrayDataset::GetBatch(std::span<const int64_t> indices) const {
  Batch batch;
  for (const Tensor& array : arrays_) batch.push_back(GatherRows(array, indices));
  return batch;
}

// ---- DataLoader ----

namespace {

DataLoader::LastBatch ParseLastBatch(std::string_view text) {
  if (text == "keep") return DataLoader::LastBatch::kKeep;
  if (text == "discard") return DataLoader::LastBatch::kDiscard;
  if (text == "rollover") return DataLoader::LastBatch::kRollover;
  throw Error("DataLoader: expected last_batch \"keep\", \"discard\" or \"rollover\", given \"" + Abbreviate(text) +
              "\"");
}

}  // namespace

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, int64_t batch_size, bool shuffle,
                       std::string_view last_batch, uint64_t seed, bool prefetch)
    : dataset_(std::move(dataset)),
      batch_size_(batch_size),
      shuffle_(shuffle),
      last_batch_(ParseLastBatch(last_batch)),
      seed_(seed),
      prefetch_(prefetch) {
  if (!dataset_) throw Error("DataLoader: expected a dataset, given none");
  CheckBatchSize("DataLoader", batch_size_);
  if (prefetch_) worker_ = std::jthread([this](std::stop_token stop) { PrepareAhead(std::move(stop)); });
}

// The jthread member requests a stop and joins; nothing else to do.
DataLoader::~DataLoader() = default;

int64_t DataLoader::CountBatches(int64_t num_samples) const {
  if (last_batch_ == LastBatch::kKeep) return (num_samples + batch_size_ - 1) / batch_size_;
  return num_samples / batch_size_;
}

void DataLoader::BeginEpochLocked() {
  auto next = std::make_shared<Epoch>();
  const bool finished = epoch_ && position_ == epoch_->num_batches;
  if (last_batch_ == LastBatch::kRollover && finished) {
    next->order.assign(epoch_->order.begin() + epoch_->num_batches * batch_size_, epoch_->order.end());
  }
  ++epoch_number_;
  const int64_t n = dataset_->size();
  const std::vector<int64_t> samples = shuffle_ ? EpochPermutation(n, seed_, epoch_number_) : Identity(n);
  next->order.insert(next->order.end(), samples.begin(), samples.end());
  next->num_batches = CountBatches(static_cast<int64_t>(next->order.size()));
  epoch_ = std::move(next);
  position_ = 0;
  prepared_.reset();
  work_available_.notify_one();
}

Batch DataLoader::Assemble(const Epoch& epoch, int64_t index) const {
  const int64_t begin = index * batch_size_;
  const int64_t end = std::min<int64_t>(begin + batch_size_, static_cast<int64_t>(epoch.order.size()));
  return dataset_->GetBatch(std::span<const int64_t>(epoch.order).subspan(begin, end - begin));
}

void DataLoader::Reset() {
  const std::lock_guard lock(mutex_);
  BeginEpochLocked();
}

std::optional<Batch> DataLoader::Next() {
  std::unique_lock lock(mutex_);
  if (!epoch_) BeginEpochLocked();
  if (position_ >= epoch_->num_batches) return std::nullopt;
  if (!prefetch_) {
    const std::shared_ptr<const Epoch> epoch = epoch_;
    const int64_t index = position_++;
    lock.unlock();
    return Assemble(*epoch, index);
  }
  batch_ready_.wait(lock, [this] { return prepared_.has_value(); });
  Prepared prepared = std::move(*prepared_);
  prepared_.reset();
  ++position_;
  work_available_.notify_one();
  lock.unlock();
  if (prepared.error) std::rethrow_exception(prepared.error);
  return std::move(prepared.batch);
}

// The background thread: assembles batch position_ whenever the caller has taken the
// one before, so that one batch is always ready or being made.
void DataLoader::PrepareAhead(std::stop_token stop) {
  std::unique_lock lock(mutex_);
  const auto has_work = [this] { return epoch_ && !prepared_ && position_ < epoch_->num_batches; };
  while (work_available_.wait(lock, stop, has_work)) {
    // Holding the epoch keeps its address from being reused while the lock is released.
    const std::shared_ptr<const Epoch> epoch = epoch_;
    const int64_t index = position_;
    lock.unlock();
    Prepared prepared;
    try {
      prepared.batch = Assemble(*epoch, index);
    } catch (...) {
      prepared.error = std::current_exception();
    }
    lock.lock();
    if (epoch_ != epoch) continue;  // Reset() began another epoch meanwhile: this batch is no one's
    prepared_ = std::move(prepared);
    batch_ready_.notify_one();
  }
}

int64_t DataLoader::size() const {
  const std::lock_guard lock(mutex_);
  return epoch_ ? epoch_->num_batches : CountBatches(dataset_->size());
}

int64_t DataLoader::epoch() const {
  const std::lock_guard lock(mutex_);
  return epoch_number_;
}

DataLoader::Iterator DataLoader::begin() {
  Reset();
  return Iterator(this);
}

// ---- NDArrayIter ----

namespace {

NDArrayIter::LastBatchHandle ParseLastBatchHandle(std::string_view text) {
  if (text == "pad") return NDArrayIter::LastBatchHandle::kPad;
  if (text == "discard") return NDArrayIter::LastBatchHandle::kDiscard;
  if (text == "roll_over") return NDArrayIter::LastBatchHandle::kRollOver;
  throw Error("NDArrayIter: expected last_batch_handle \"pad\", \"discard\" or \"roll_over\", given \"" +
              Abbreviate(text) + "\"");
}

std::vector<NamedArray> NamedOrNone(std::string name, Tensor array) {
  if (!array.defined()) return {};
  return {NamedArray{std::move(name), std::move(array)}};
}

std::vector<Tensor> GatherAll(const std::vector<NamedArray>& arrays, std::span<const int64_t> rows) {
  std::vector<Tensor> gathered;
  for (const NamedArray& named : arrays) gathered.push_back(GatherRows(named.array, rows));
  return gathered;
}

}  // namespace

NDArrayIter::NDArrayIter(std::vector<NamedArray> data, std::vector<NamedArray> label, int64_t batch_size, bool shuffle,
                         std::string_view last_batch_handle, uint64_t seed)
    : data_(std::move(data)),
      label_(std::move(label)),
      batch_size_(batch_size),
      shuffle_(shuffle),
      last_batch_handle_(ParseLastBatchHandle(last_batch_handle)),
      seed_(seed) {
  CheckBatchSize("NDArrayIter", batch_size_);
  if (data_.empty()) throw Error("NDArrayIter: expected at least one data array, given none");
  std::vector<const NamedArray*> all;
  for (const auto* arrays : {&data_, &label_}) {
    for (const NamedArray& named : *arrays) all.push_back(&named);
  }
  std::vector<const Tensor*> tensors;
  for (const NamedArray* named : all) tensors.push_back(&named->array);
  num_data_ = CheckSampleArrays("NDArrayIter", tensors, [&](size_t i) { return "'" + all[i]->name + "'"; });
  if (last_batch_handle_ == LastBatchHandle::kRollOver && batch_size_ > num_data_) {
    throw Error("NDArrayIter: roll_over expects a batch size of at most the " + std::to_string(num_data_) +
                " samples, given " + std::to_string(batch_size_));
  }
  DrawOrder();
  cursor_ = -batch_size_;
}

NDArrayIter::NDArrayIter(Tensor data, Tensor label, int64_t batch_size, bool shuffle,
                         std::string_view last_batch_handle, uint64_t seed)
    : NDArrayIter(NamedOrNone("data", std::move(data)), NamedOrNone("softmax_label", std::move(label)), batch_size,
                  shuffle, last_batch_handle, seed) {}

// The next epoch's order of samples (MXNet shuffles at construction and at every reset).
void NDArrayIter::DrawOrder() {
  order_ = shuffle_ ? EpochPermutation(num_data_, seed_, epoch_) : Identity(num_data_);
  ++epoch_;
}

std::optional<DataBatch> NDArrayIter::Next() {
  cursor_ += batch_size_;
  if (cursor_ >= num_data_) return std::nullopt;
  const int64_t pad = Pad();
  std::vector<int64_t> samples = BatchSamples();
  if (static_cast<int64_t>(samples.size()) != batch_size_) {
    held_back_ = std::move(samples);  // an incomplete last batch ends the epoch
    return std::nullopt;
  }
  return DataBatch{GatherAll(data_, samples), GatherAll(label_, samples), pad};
}

// MXNet's _batchify, as sample numbers.
std::vector<int64_t> NDArrayIter::BatchSamples() {
  const int64_t end = std::min(cursor_ + batch_size_, num_data_);
  if (last_batch_handle_ == LastBatchHandle::kRollOver && cursor_ < 0) {
    std::vector<int64_t> samples = std::exchange(held_back_, {});
    samples.insert(samples.end(), order_.begin(), order_.begin() + end);
    return samples;
  }
  std::vector<int64_t> samples(order_.begin() + cursor_, order_.begin() + end);
  if (last_batch_handle_ == LastBatchHandle::kPad) {
    for (int64_t i = 0; static_cast<int64_t>(samples.size()) < batch_size_; ++i) {
      samples.push_back(order_[i % num_data_]);
    }
  }
  return samples;
}

// MXNet's getpad.
int64_t NDArrayIter::Pad() const {
  if (last_batch_handle_ == LastBatchHandle::kPad && cursor_ + batch_size_ > num_data_) {
    return cursor_ + batch_size_ - num_data_;
  }
  if (last_batch_handle_ == LastBatchHandle::kRollOver && cursor_ < 0) return -cursor_;
  return 0;
}

void NDArrayIter::Reset() {
  DrawOrder();
  // After an epoch that ended on an incomplete batch, the cursor steps back by that
  // batch's length, so that the next batch starts with the samples held back.
  const bool ended_incomplete = num_data_ - batch_size_ < cursor_ && cursor_ < num_data_;
  if (last_batch_handle_ == LastBatchHandle::kRollOver && ended_incomplete) {
    cursor_ -= num_data_ + batch_size_;
  } else {
    cursor_ = -batch_size_;
  }
}

void NDArrayIter::HardReset() {
  DrawOrder();
  cursor_ = -batch_size_;
  held_back_.clear();
}

std::vector<DataDesc> NDArrayIter::Describe(const std::vector<NamedArray>& arrays) const {
  std::vector<DataDesc> descs;
  for (const NamedArray& named : arrays) {
    Shape shape = SampleShape(named.array);
    shape.insert(shape.begin(), batch_size_);
    descs.push_back({named.name, std::move(shape), named.array.dtype()});
  }
  return descs;
}

}  // namespace kiln
