// The config topics this device reads (protocol.md section 7), their precedence, and the game's
// subscriptions, told of changes in Poll(). Internal.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "callback_queue.hpp"
#include "engine_bridge/engine_bridge.hpp"

namespace engine_bridge::detail {

class ConfigStore {
 public:
  explicit ConfigStore(CallbackQueue& callbacks) : callbacks_(callbacks) {}

  /// At Connect: whose GameRamp topic to read.
  void SetDevice(const std::string& device_id);
  /// Whether a topic is one this device reads: `config/...`, but not another device's GameRamp config
  /// (a subscription to `config/` receives those too on a shared server).
  bool Reads(std::string_view topic) const;

  Status Subscribe(Text key, ConfigCallback callback, SubscriptionId* id);
  void Unsubscribe(SubscriptionId id);
  std::optional<Value> Get(std::string_view key) const;
  /// Runs in Poll(): a topic's new values; the subscribers whose key changed are told.
  void Apply(const std::string& topic, Value::Map values);

 private:
  struct Subscription {
    std::string key;
    std::shared_ptr<ConfigCallback> callback;
  };
  /// local overrides, then this device's GameRamp config, then GameAnalytics. Under mu_.
  const Value* Resolve(std::string_view key) const;

  CallbackQueue& callbacks_;
  mutable std::mutex mu_;
  std::map<std::string, Value::Map, std::less<>> topics_;
  std::map<SubscriptionId, Subscription> subscriptions_;
  SubscriptionId next_subscription_ = 1;
  std::string gameramp_topic_;
};

}  // namespace engine_bridge::detail
