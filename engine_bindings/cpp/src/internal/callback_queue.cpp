#include "callback_queue.hpp"

#include <vector>

namespace engine_bridge::detail {

void CallbackQueue::Post(std::function<void()> fn) {
  std::lock_guard<std::mutex> lk(mu_);
  pending_.push_back(std::move(fn));
}

std::size_t CallbackQueue::Run() {
  std::deque<std::function<void()>> ready;
  {
    std::lock_guard<std::mutex> lk(mu_);
    ready.swap(pending_);
  }
  std::size_t ran = 0;
  try {
    for (; !ready.empty(); ready.pop_front()) {
      ++ran;
      ready.front()();
    }
  } catch (...) {
    ready.pop_front();  // the one that threw has run
    std::lock_guard<std::mutex> lk(mu_);
    pending_.insert(pending_.begin(), std::make_move_iterator(ready.begin()), std::make_move_iterator(ready.end()));
    throw;
  }
  return ran;
}

}  // namespace engine_bridge::detail
