#include "console.hpp"

#include <cstdio>

namespace engine_bridge::detail {

void Console::Log(LogLevel level, std::string message) {
  callbacks_.Post([this, level, line = "engine-bridge: " + std::move(message)] {
    if (std::shared_ptr<LogCallback> handler = handler_.Get()) {
      (*handler)(level, line);
    } else {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
  });
}

void Console::Refusal(const ProviderRefusal& r, Clock::time_point now) {
  if (window_open_) {
    ++suppressed_;
    return;
  }
  window_open_ = true;
  window_end_ = now + kRefusalWindow;
  Log(LogLevel::Warning, r.provider + " refuses event " + r.event_id + ": " + r.rule + ". The daemon stored it, but " +
                             r.provider + " will not get it until it is fixed (engine-bridge dead-letters lists it)");
}

void Console::Tick(Clock::time_point now) {
  if (!window_open_ || now < window_end_) return;
  window_open_ = false;
  if (suppressed_ == 0) return;
  Log(LogLevel::Warning, std::to_string(suppressed_) + " more events refused by providers in the last " +
                             std::to_string(kRefusalWindow.count()) +
                             " s (Stats::provider_refusals counts them all; engine-bridge dead-letters lists them)");
  suppressed_ = 0;
}

}  // namespace engine_bridge::detail
