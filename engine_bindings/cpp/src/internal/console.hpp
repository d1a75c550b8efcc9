// The binding's messages to the game's console: through the game's LogCallback (standard error without
// one), always on the thread that calls Poll(); provider refusals rate-limited. Internal.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "callback_queue.hpp"
#include "engine_bridge/engine_bridge.hpp"

namespace engine_bridge::detail {

class Console {
 public:
  using Clock = std::chrono::steady_clock;
  /// Refusals warned about one by one at most once per window; the rest are summed up when it ends.
  static constexpr std::chrono::seconds kRefusalWindow{10};

  explicit Console(CallbackQueue& callbacks) : callbacks_(callbacks) {}
  void SetHandler(LogCallback handler) { handler_.Set(std::move(handler)); }
  /// `message` without the "engine-bridge: " prefix, which is added here.
  void Log(LogLevel level, std::string message);

  // I/O thread only.
  void Refusal(const ProviderRefusal& refusal, Clock::time_point now);
  void Tick(Clock::time_point now);

 private:
  CallbackQueue& callbacks_;
  Handler<LogCallback> handler_;
  Clock::time_point window_end_;
  bool window_open_ = false;
  std::uint64_t suppressed_ = 0;
};

}  // namespace engine_bridge::detail
