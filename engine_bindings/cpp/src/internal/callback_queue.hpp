// Callbacks posted by the I/O thread, run later on the thread that calls Poll(), so that game code never
// runs on the binding's thread; and the game's handlers, settable from any thread at any time. Internal.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

namespace engine_bridge::detail {

class CallbackQueue {
 public:
  void Post(std::function<void()> fn);
  /// Runs everything posted so far; returns how many ran. When a callback throws, the ones after it stay
  /// queued for the next Run and the exception goes on to the caller.
  std::size_t Run();

 private:
  std::mutex mu_;
  std::deque<std::function<void()>> pending_;
};

/// One game-wide handler (refusals, connection changes, log lines), read when a callback runs.
template <typename Fn>
class Handler {
 public:
  void Set(Fn fn) {
    auto next = fn ? std::make_shared<Fn>(std::move(fn)) : nullptr;
    std::lock_guard<std::mutex> lk(mu_);
    fn_ = std::move(next);
  }
  std::shared_ptr<Fn> Get() const {
    std::lock_guard<std::mutex> lk(mu_);
    return fn_;
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<Fn> fn_;
};

}  // namespace engine_bridge::detail
