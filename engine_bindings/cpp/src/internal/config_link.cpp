// The configs SUB socket (protocol.md section 7): each two-frame publication goes to the ConfigStore, at its
// highest version per topic, or, for this device's purchase topic, to PurchaseVerdicts. From a relay (protocol.md
// 11.4) each topic comes behind this install's public key, which is taken off first.
#include "client_impl.hpp"
#include "msgpack_reader.hpp"

namespace engine_bridge {

void Client::Impl::HandlePublications() {
  zmq::message_t topic_frame, payload;
  while (sub_.recv(topic_frame, zmq::recv_flags::dontwait)) {
    if (!topic_frame.more() || !sub_.recv(payload, zmq::recv_flags::dontwait)) continue;
    for (bool more = payload.more(); more;) {  // protocol.md: two frames; later ones are not ours
      zmq::message_t rest;
      if (!sub_.recv(rest, zmq::recv_flags::dontwait)) break;
      more = rest.more();
    }
    std::string topic(static_cast<const char*>(topic_frame.data()), topic_frame.size());
    if (relay_) {
      // A relay's topic frame is our public key, then the topic (protocol.md 11.4); the game sees the topic.
      if (topic.compare(0, keys_.public_key.size(), keys_.public_key) != 0) continue;
      topic.erase(0, keys_.public_key.size());
      // Our device's GameAnalytics configs, read as the v1 topic is beside a daemon (the relay sends no v1 one).
      if (topic == gameanalytics_topic_) topic = std::string(detail::kGameAnalyticsTopic);
    }
    const bool verdicts = topic == purchase_topic_;
    // The prefixes also match other devices' topics (purchase/<id>x, and GameRamp topics on a shared server).
    if (!verdicts && !configs.Reads(topic)) continue;
    std::optional<Value> publication = detail::Decode(payload.data(), payload.size());
    if (!publication) continue;
    if (verdicts) {
      // No version check here: verdicts never change and each id is handled once, so a repeat is harmless,
      // and a daemon with a fresh store (versions from 1 again) is still heard.
      purchases.OnTopic(*publication);
      continue;
    }
    detail::Publication p = detail::ReadPublication(*publication);
    std::uint64_t& known = versions_[topic];
    if (p.version <= known) continue;  // a late-subscriber repeat of what we have
    known = p.version;
    callbacks.Post([this, topic = std::move(topic), values = std::move(p.values)]() mutable {
      configs.Apply(topic, std::move(values));
    });
  }
}

}  // namespace engine_bridge
