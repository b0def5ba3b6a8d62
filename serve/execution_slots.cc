#include "serve/execution_slots.h"

#include <algorithm>

namespace kiln::serve {

ExecutionSlots::Outcome ExecutionSlots::Acquire(int max_waiting, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (free_ > 0 && waiters_.empty()) {
    --free_;
    return Outcome::kGranted;
  }
  if (static_cast<int>(waiters_.size()) >= max_waiting) return Outcome::kQueueFull;
  Waiter me;
  waiters_.push_back(&me);
  if (me.wake.wait_for(lock, timeout, [&] { return me.granted; })) return Outcome::kGranted;
  waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &me));
  return Outcome::kTimedOut;
}

int ExecutionSlots::waiting() {
  std::lock_guard lock(mutex_);
  return static_cast<int>(waiters_.size());
}

void ExecutionSlots::Release() {
  std::lock_guard lock(mutex_);
  if (waiters_.empty()) {
    ++free_;
    return;
  }
  // Handed over directly: the waiter's slot is never seen free by a newcomer.
  Waiter* oldest = waiters_.front();
  waiters_.pop_front();
  oldest->granted = true;
  oldest->wake.notify_one();
}

}  // namespace kiln::serve
