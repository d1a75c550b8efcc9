// The ingress DEALER (protocol.md sections 3, 4 and 10): hello on every connection, events in batches with
// several in flight, released from the queue as acks come back (their provider refusals told to the game),
// control requests in their place in the stream, and everything unacknowledged resent after a drop, a
// `hello_required` or a timeout.
#include <algorithm>
#include <cstring>

#include "client_impl.hpp"
#include "msgpack_reader.hpp"

namespace engine_bridge {

namespace {
constexpr auto kRetryAfterError = std::chrono::milliseconds(1000);
}  // namespace

void Client::Impl::SendHello(Clock::time_point now) {
  if (!transport_up_) return;
  if (hello_rid_) {  // the last hello had no answer at all within the request timeout
    SetState(ConnectionState::WrongPeer, settings_.ingress_endpoint + " accepts ZeroMQ connections but does not "
             "answer hello: another program holds it, or the daemon there hangs");
  }
  const std::uint32_t rid = NextRid();
  if (!SendFrame(detail::RequestFrame("hello", rid, hello_body_))) return;  // the pipe is not attached yet
  hello_rid_ = rid;
  hello_due_at_ = now + settings_.request_timeout;  // no welcome by then: say it again
}

bool Client::Impl::SendFrame(const std::string& frame, std::size_t offset) {
  zmq::message_t msg(frame.data() + offset, frame.size() - offset);
  return dealer_.send(msg, zmq::send_flags::dontwait).has_value();
}

void Client::Impl::SendWork(Clock::time_point now) {
  queue.TakeControls(controls_ready_);
  while (requests_.size() < settings_.max_in_flight) {
    const bool control_waits = !controls_ready_.empty();
    const std::uint64_t limit = control_waits ? controls_ready_.front().after_seq : UINT64_MAX;
    const std::uint64_t waiting = queue.Waiting(limit);
    if (waiting == 0) {
      if (!control_waits || !SendControl(now)) return;
      continue;
    }
    // While batches are in flight, let the next one fill up (their acks wake us), unless a control
    // request waits behind these events or the game is quitting.
    bool stopping;
    {
      std::lock_guard<std::mutex> lk(stop_mu_);
      stopping = stopping_;
    }
    if (event_requests_ > 0 && waiting < wire_limits_.max_batch_events && !control_waits && !stopping) return;
    if (!SendBatch(limit, now)) return;
  }
}

bool Client::Impl::SendBatch(std::uint64_t limit_seq, Clock::time_point now) {
  const std::uint32_t rid = NextRid();
  std::string& buf = batch_buf_;
  buf.assign(detail::kBatchHeadRoom, '\0');  // the head goes in front once the count is known
  Request req;
  req.sent_at = now;
  queue.Fill(rid, limit_seq, wire_limits_.max_batch_events, wire_limits_.max_message_bytes, buf, req.seqs);
  if (req.seqs.empty()) return true;  // everything in range was in flight already
  const std::string head = detail::BatchHead(rid, static_cast<std::uint32_t>(req.seqs.size()));
  const std::size_t start = detail::kBatchHeadRoom - head.size();
  std::memcpy(&buf[start], head.data(), head.size());
  if (!SendFrame(buf, start)) {
    Requeue(rid, std::move(req));  // not connected after all; the disconnect event follows
    return false;
  }
  queue.Sent(req.seqs);
  ++event_requests_;
  requests_.emplace(rid, std::move(req));
  return true;
}

bool Client::Impl::SendControl(Clock::time_point now) {
  detail::Control& c = controls_ready_.front();
  const std::uint32_t rid = NextRid();
  if (!SendFrame(detail::RequestFrame(c.type, rid, c.body))) return false;
  Request req;
  req.control = std::move(c);
  req.sent_at = now;
  controls_ready_.pop_front();
  requests_.emplace(rid, std::move(req));
  return true;
}

void Client::Impl::HandleFrame(const zmq::message_t& frame, Clock::time_point now) {
  std::optional<Value> reply = detail::Decode(frame.data(), frame.size());
  if (reply && reply->AsMap()) {
    HandleReply(*reply, now);
  } else if (!ready_) {
    SetState(ConnectionState::WrongPeer, "another program holds " + settings_.ingress_endpoint +
             ": it answers with frames that are not engine-bridge's (not one msgpack map)");
  }
}

void Client::Impl::HandleReply(const Value& reply, Clock::time_point now) {
  const Value* rid_value = reply.Find("rid");
  const std::optional<std::uint64_t> rid = rid_value ? rid_value->AsUInt() : std::nullopt;
  const std::string_view type = detail::StrField(reply, "type");
  if (!rid) return;  // an error about a frame the daemon could not read: nothing of ours to retry
  if (hello_rid_ && *rid == *hello_rid_) {
    hello_rid_.reset();
    if (type == "welcome") {
      HandleWelcome(reply);
    } else {  // refused (another protocol version): hello_due_at_ says it again later
      const std::string why = std::string("the ") + Peer() + " at " + settings_.ingress_endpoint + " refuses this client's hello: " +
                              std::string(detail::StrField(reply, "code")) + ": " +
                              std::string(detail::StrField(reply, "message"));
      if (relay_ && detail::StrField(reply, "code") == "forbidden") {
        // Another key owns this device_id at the relay (protocol.md 11.3): the key file was lost or replaced.
        SetState(ConnectionState::WrongPeer, why + ". The relay knows this device_id by another key: keep "
                 "Settings::relay.key_file with the save data, or give a new install a new device_id");
      } else if (detail::StrField(reply, "code") == "wrong_game") {
        // Another game's daemon: nothing is sent to it; hello_due_at_ asks again later (ours may take over).
        SetState(ConnectionState::WrongPeer, why + ". Check Settings::game and the endpoints");
      } else {
        queue.Update([&](Stats& s) { s.last_error = why; });
      }
    }
    return;
  }
  auto it = requests_.find(static_cast<std::uint32_t>(*rid));
  if (it == requests_.end()) return;  // the answer to a request already resent
  Request req = std::move(it->second);
  requests_.erase(it);
  if (!req.control) --event_requests_;
  if (type == "error") {
    const std::string_view code = detail::StrField(reply, "code");
    if (code == "hello_required") {
      // The daemon forgot this connection (it restarted): hello again, then everything is resent.
      Requeue(static_cast<std::uint32_t>(*rid), std::move(req));
      if (ready_) {
        ready_ = false;
        hello_due_at_ = now;
      }
      return;
    }
    if (code == "unavailable" || code == "internal") {
      Requeue(static_cast<std::uint32_t>(*rid), std::move(req));
      pause_until_ = now + kRetryAfterError;
      return;
    }
  }
  if (!req.control) {
    HandleAck(req, reply, now);
  } else if (const auto* ticket = std::get_if<detail::PurchaseTicket>(&req.control->on_reply)) {
    purchases.OnReply(*ticket, reply);
  } else if (const ReplyCallback& callback = std::get<ReplyCallback>(req.control->on_reply)) {
    callbacks.Post([callback, r = detail::ReadReply(reply)] { callback(r); });
  }
}

void Client::Impl::HandleWelcome(const Value& welcome) {
  hello_due_at_.reset();
  ready_ = true;
  ++welcomes_;
  redial_backoff_ = std::chrono::milliseconds(0);
  wire_limits_ = detail::ReadLimits(welcome);
  limits.Set(wire_limits_);
  // A relay's topics come behind our key, which we subscribed to at the start (protocol.md 11.4).
  const Value* topics = relay_ ? nullptr : welcome.Find("topics");
  if (topics && topics->AsArray()) {
    for (const Value& t : *topics->AsArray()) {
      const std::string* prefix = t.AsString();
      if (prefix && subscribed_.insert(*prefix).second) sub_.set(zmq::sockopt::subscribe, *prefix);
    }
  }
  queue.Update([&](Stats& s) {
    s.connected = true;
    s.reconnects = welcomes_ - 1;
  });
  SetState(ConnectionState::Connected, "connected to engine-bridge " +
                                           std::string(detail::StrField(welcome, "daemon_version")) + " at " +
                                           settings_.ingress_endpoint);
}

void Client::Impl::HandleAck(const Request& req, const Value& reply, Clock::time_point now) {
  if (detail::StrField(reply, "type") != "ack") {
    queue.Acked(req.seqs, nullptr, std::string(detail::StrField(reply, "code")) + ": " +
                                       std::string(detail::StrField(reply, "message")));
    return;
  }
  detail::Ack ack = detail::ReadAck(reply);
  queue.Acked(req.seqs, &ack, {});
  for (ProviderRefusal& refusal : ack.refusals) {
    console.Refusal(refusal, now);
    callbacks.Post([this, refusal = std::move(refusal)] {
      if (std::shared_ptr<ProviderRefusalCallback> handler = refusal_handler.Get()) (*handler)(refusal);
    });
  }
}

void Client::Impl::Requeue(std::uint32_t rid, Request req) {
  if (req.control) {
    // Back in front of the controls not yet sent, in the order the game made them.
    auto pos = std::find_if(controls_ready_.begin(), controls_ready_.end(),
                            [&](const detail::Control& c) { return c.order > req.control->order; });
    controls_ready_.insert(pos, std::move(*req.control));
    return;
  }
  queue.Requeue(rid, req.seqs);
}

void Client::Impl::RequeueAll() {
  auto pending = std::move(requests_);
  requests_.clear();
  event_requests_ = 0;
  for (auto& [rid, req] : pending) Requeue(rid, std::move(req));
}

void Client::Impl::CheckTimeouts(Clock::time_point now) {
  for (auto it = requests_.begin(); it != requests_.end();) {
    if (now - it->second.sent_at < settings_.request_timeout) {
      ++it;
      continue;
    }
    if (!it->second.control) --event_requests_;
    Requeue(it->first, std::move(it->second));
    it = requests_.erase(it);
  }
}

}  // namespace engine_bridge
