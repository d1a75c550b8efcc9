// The configs SUB socket (protocol.md section 7): each two-frame publication goes to the ConfigStore, at its
// highest version per topic, or, for this device's purchase topic, to PurchaseVerdicts.
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
