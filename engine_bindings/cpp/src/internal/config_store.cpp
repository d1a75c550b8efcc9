#include "config_store.hpp"

#include <vector>

#include "check.hpp"
#include "wire.hpp"

namespace engine_bridge::detail {

void ConfigStore::SetDevice(const std::string& device_id) {
  std::lock_guard<std::mutex> lk(mu_);
  gameramp_topic_ = std::string(kGameRampPrefix) + device_id;
}

bool ConfigStore::Reads(std::string_view topic) const {
  if (topic.substr(0, kConfigPrefix.size()) != kConfigPrefix) return false;
  if (topic.substr(0, kGameRampPrefix.size()) != kGameRampPrefix) return true;
  std::lock_guard<std::mutex> lk(mu_);
  return topic == gameramp_topic_;
}

const Value* ConfigStore::Resolve(std::string_view key) const {
  const std::string_view order[] = {kLocalTopic, gameramp_topic_, kGameAnalyticsTopic};
  for (std::string_view topic : order) {
    auto it = topics_.find(topic);
    if (it == topics_.end()) continue;
    for (const auto& [k, v] : it->second) {
      if (k == key) return &v;
    }
  }
  return nullptr;
}

std::optional<Value> ConfigStore::Get(std::string_view key) const {
  std::lock_guard<std::mutex> lk(mu_);
  const Value* v = Resolve(key);
  return v ? std::optional<Value>(*v) : std::nullopt;
}

Status ConfigStore::Subscribe(Text key, ConfigCallback callback, SubscriptionId* id) {
  if (key.is_null() || key.empty()) return Invalid("SubscribeConfig: key is null or empty");
  if (!callback) return Invalid("SubscribeConfig: callback is empty");
  SubscriptionId sid;
  bool known;
  {
    std::lock_guard<std::mutex> lk(mu_);
    sid = next_subscription_++;
    subscriptions_[sid] = Subscription{std::string(key.view()), std::make_shared<ConfigCallback>(std::move(callback))};
    known = Resolve(key.view()) != nullptr;
  }
  if (known) {
    // A late subscriber gets the current value in the next Poll, like every other callback.
    callbacks_.Post([this, sid] {
      std::shared_ptr<ConfigCallback> cb;
      std::string k;
      Value value;
      {
        std::lock_guard<std::mutex> lk(mu_);
        auto it = subscriptions_.find(sid);
        if (it == subscriptions_.end()) return;
        const Value* v = Resolve(it->second.key);
        if (v == nullptr) return;
        cb = it->second.callback;
        k = it->second.key;
        value = *v;
      }
      (*cb)(k, value);
    });
  }
  if (id != nullptr) *id = sid;
  return Status();
}

void ConfigStore::Unsubscribe(SubscriptionId id) {
  std::lock_guard<std::mutex> lk(mu_);
  subscriptions_.erase(id);
}

void ConfigStore::Apply(const std::string& topic, Value::Map values) {
  struct Change {
    std::shared_ptr<ConfigCallback> callback;
    std::string key;
    Value value;
  };
  std::vector<Change> changes;
  {
    std::lock_guard<std::mutex> lk(mu_);
    std::vector<std::optional<Value>> before;
    before.reserve(subscriptions_.size());
    for (const auto& [sid, sub] : subscriptions_) {
      const Value* v = Resolve(sub.key);
      before.push_back(v ? std::optional<Value>(*v) : std::nullopt);
    }
    topics_[topic] = std::move(values);
    std::size_t i = 0;
    for (const auto& [sid, sub] : subscriptions_) {
      const Value* now = Resolve(sub.key);
      const std::optional<Value>& was = before[i++];
      if (now == nullptr ? was.has_value() : (!was || *was != *now)) {
        changes.push_back(Change{sub.callback, sub.key, now ? *now : Value()});
      }
    }
  }
  for (const Change& c : changes) (*c.callback)(c.key, c.value);
}

}  // namespace engine_bridge::detail
