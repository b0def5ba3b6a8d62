// The server's execution slots: at most `slots` requests run at once; the others wait in
// first-come order, at most `max_waiting` of them and each for at most its timeout. A
// slot that frees goes to the longest waiter (std::counting_semaphore hands it to whoever
// the scheduler wakes: under load some requests waited seconds while later ones ran).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>

namespace kiln::serve {

class ExecutionSlots {
 public:
  enum class Outcome { kGranted, kQueueFull, kTimedOut };

  explicit ExecutionSlots(int slots) : free_(slots) {}

  Outcome Acquire(int max_waiting, std::chrono::milliseconds timeout);
  void Release();
  int waiting();  // requests in line now

 private:
  struct Waiter {
    std::condition_variable wake;
    bool granted = false;
  };
  std::mutex mutex_;
  int free_;
  std::deque<Waiter*> waiters_;  // oldest first; each lives on its waiting thread's stack
};

// Holds a granted slot until the end of its scope.
class SlotGuard {
 public:
  explicit SlotGuard(ExecutionSlots& slots) : slots_(slots) {}
  ~SlotGuard() { slots_.Release(); }
  SlotGuard(const SlotGuard&) = delete;
  SlotGuard& operator=(const SlotGuard&) = delete;

 private:
  ExecutionSlots& slots_;
};

}  // namespace kiln::serve
