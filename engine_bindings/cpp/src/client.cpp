// The background half of the client: sockets, hello, batches, acks, resends, configs, the launcher.
#include <algorithm>
#include <cerrno>
#include <cstring>

#include "client_impl.hpp"

namespace engine_bridge {

using detail::Invalid;
using detail::Writer;

namespace {

constexpr std::string_view kGameRampPrefix = "config/gameramp/";
constexpr std::string_view kConfigPrefix = "config/";
constexpr std::string_view kPurchasePrefix = "purchase/";
constexpr auto kRetryAfterError = std::chrono::milliseconds(1000);
constexpr auto kMaxLaunchBackoff = std::chrono::milliseconds(30000);
constexpr std::size_t kMaxControlsWaiting = 256;
constexpr std::size_t kScanChunk = 64;  // entries copied per lock while building a batch

std::string_view StrField(const Value& map, std::string_view key) {
  const Value* v = map.Find(key);
  const std::string* s = v ? v->AsString() : nullptr;
  return s ? std::string_view(*s) : std::string_view();
}

std::uint64_t UIntField(const Value& map, std::string_view key) {
  const Value* v = map.Find(key);
  return v ? v->AsUInt().value_or(0) : 0;
}

// Checks a GameInfo string: `required` ones must be set; all must be UTF-8 within `max_chars`.
Status CheckInfo(const char* name, const std::string& value, bool required, std::size_t max_chars) {
  if (value.empty()) {
    return required ? Invalid(std::string("Connect: GameInfo.") + name + " is required") : Status();
  }
  std::optional<std::size_t> chars = detail::Utf8Chars(value);
  if (!chars) return Invalid(std::string("Connect: GameInfo.") + name + " is not valid UTF-8");
  if (*chars > max_chars) {
    return Invalid(std::string("Connect: GameInfo.") + name + " has " + std::to_string(*chars) +
                   " chars; the limit is " + std::to_string(max_chars));
  }
  return Status();
}

}  // namespace

// --- Connect / Shutdown ---------------------------------------------------------------------------------

Status Client::Impl::Connect(const GameInfo& game, const Settings& settings) {
  if (thread_.joinable()) return Status(ErrorCode::AlreadyConnected, "Connect: already connected; Shutdown() first");
  struct InfoField {
    const char* name;
    const std::string& value;
    bool required;
    std::size_t max_chars;
  };
  const InfoField info[] = {
      {"engine", game.engine, true, 64},          {"engine_version", game.engine_version, false, 64},
      {"game_build", game.game_build, true, 32},  {"device_id", game.device_id, true, 128},
      {"user_id", game.user_id, false, 128},      {"platform", game.platform, false, 32},
      {"os_version", game.os_version, false, 64}, {"device", game.device, false, 64},
      {"manufacturer", game.manufacturer, false, 64},
  };
  for (const InfoField& f : info) {
    if (Status s = CheckInfo(f.name, f.value, f.required, f.max_chars); !s) return s;
  }
  if (settings.ingress_endpoint.empty() || settings.configs_endpoint.empty()) {
    return Invalid("Connect: Settings.ingress_endpoint and configs_endpoint must be set");
  }
  if (settings.queue_capacity == 0) return Invalid("Connect: Settings.queue_capacity must be at least 1");
  if (settings.max_in_flight == 0) return Invalid("Connect: Settings.max_in_flight must be at least 1");
  if (settings.send_interval.count() <= 0 || settings.request_timeout.count() <= 0) {
    return Invalid("Connect: Settings.send_interval and request_timeout must be positive");
  }
  if (!settings.daemon.command.empty() && !detail::CanLaunchDaemon()) {
    return Invalid("Connect: Settings.daemon.command: launching the daemon is not supported on this platform");
  }

  game_ = game;
  settings_ = settings;
  hello_body_.clear();
  Writer w(hello_body_);
  w.Str("protocol");
  w.Int(kProtocolVersion);
  w.Str("binding");
  w.Str(kBindingName);
  w.Str("binding_version");
  w.Str(kBindingVersion);
  for (const InfoField& f : info) {
    if (f.value.empty()) continue;
    w.Str(f.name);
    w.Str(f.value);
  }
  hello_fields_ = 3;
  for (const InfoField& f : info) hello_fields_ += f.value.empty() ? 0 : 1;
  purchase_topic_ = std::string(kPurchasePrefix) + game_.device_id;

  try {
    OpenSockets();
  } catch (const zmq::error_t& e) {
    dealer_.close();
    sub_.close();
    monitor_.close();
    ctx_.close();
    // A malformed endpoint is the caller's mistake; anything else (out of file descriptors) is not.
    const bool bad_endpoint = e.num() == EINVAL || e.num() == EPROTONOSUPPORT || e.num() == ENOCOMPATPROTO;
    return Status(bad_endpoint ? ErrorCode::InvalidArgument : ErrorCode::Internal,
                  "Connect: cannot open sockets to " + settings_.ingress_endpoint + " and " +
                      settings_.configs_endpoint + ": " + e.what());
  }
  {
    std::lock_guard<std::mutex> lk(cfg_mu_);
    gameramp_topic_ = std::string(kGameRampPrefix) + game_.device_id;
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = false;
    cursor_ = front_seq_;
    stats_.connected = false;
  }
  transport_up_ = ready_ = false;
  hello_due_at_.reset();
  hello_rid_.reset();
  welcomes_ = 0;
  requests_.clear();
  event_requests_ = 0;
  pause_until_ = Clock::time_point();
  launch_backoff_ = settings_.daemon.probe;
  next_launch_ = Clock::now() + settings_.daemon.probe;
  running_.store(true, std::memory_order_release);
  thread_ = std::thread([this] { Run(); });
  return Status();
}

void Client::Impl::OpenSockets() {
  ctx_ = zmq::context_t(1);
  dealer_ = zmq::socket_t(ctx_, zmq::socket_type::dealer);
  dealer_.set(zmq::sockopt::linger, 0);
  // Queue only to a connection whose handshake is done: what we send then goes to a daemon that is there.
  dealer_.set(zmq::sockopt::immediate, 1);
  dealer_.set(zmq::sockopt::reconnect_ivl, 100);       // protocol.md: 100 ms doubling to 5 s
  dealer_.set(zmq::sockopt::reconnect_ivl_max, 5000);
  dealer_.set(zmq::sockopt::heartbeat_ivl, 2000);      // notice a daemon that hangs without closing
  dealer_.set(zmq::sockopt::heartbeat_timeout, 6000);
  dealer_.set(zmq::sockopt::sndhwm, 0);
  // The monitor tells us about every (re)connect, so we say hello again at once.
  const std::string monitor_endpoint = "inproc://engine-bridge-monitor-" + std::to_string(reinterpret_cast<std::uintptr_t>(this));
  if (zmq_socket_monitor(dealer_.handle(), monitor_endpoint.c_str(),
                         ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) != 0) {
    throw zmq::error_t();
  }
  monitor_ = zmq::socket_t(ctx_, zmq::socket_type::pair);
  monitor_.set(zmq::sockopt::linger, 0);
  monitor_.connect(monitor_endpoint);
  dealer_.connect(settings_.ingress_endpoint);

  sub_ = zmq::socket_t(ctx_, zmq::socket_type::sub);
  sub_.set(zmq::sockopt::linger, 0);
  sub_.set(zmq::sockopt::reconnect_ivl, 100);
  sub_.set(zmq::sockopt::reconnect_ivl_max, 5000);
  // Subscribe before the welcome (which lists the same two): a late subscriber gets every config topic's
  // current value at once, and this device's recent purchase verdicts.
  sub_.set(zmq::sockopt::subscribe, kConfigPrefix);
  sub_.set(zmq::sockopt::subscribe, purchase_topic_);
  subscribed_ = {std::string(kConfigPrefix), purchase_topic_};
  versions_.clear();
  sub_.connect(settings_.configs_endpoint);
}

void Client::Impl::Shutdown(std::optional<std::chrono::milliseconds> grace) {
  if (!thread_.joinable()) return;
  running_.store(false, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
    stop_deadline_ = Clock::now() + grace.value_or(settings_.shutdown_grace);
  }
  thread_.join();
}

// --- the game side: events, controls, callbacks ---------------------------------------------------------

void Client::Impl::Enqueue(std::string bytes) {
  std::lock_guard<std::mutex> lk(mu_);
  if (log_.size() >= settings_.queue_capacity) {
    // Full: the oldest event goes, so memory stays bounded while the daemon is away.
    Entry& oldest = log_.front();
    if (!oldest.acked) {
      ++stats_.dropped;
      --stats_.queued;
      if (oldest.in_flight) --stats_.in_flight;
    }
    log_.pop_front();
    ++front_seq_;
  }
  log_.push_back(Entry{std::move(bytes)});
  ++stats_.tracked;
  ++stats_.queued;
}

Status Client::Impl::EnqueueControl(std::string_view api, std::string_view type, std::string body,
                                    std::uint32_t body_fields, OnReply on_reply) {
  if (!running_.load(std::memory_order_acquire)) {
    return Status(ErrorCode::NotConnected, std::string(api) + ": call Connect() first");
  }
  std::lock_guard<std::mutex> lk(mu_);
  if (controls_waiting_.size() >= kMaxControlsWaiting) {
    return Status(ErrorCode::QueueFull, std::string(api) + ": " + std::to_string(kMaxControlsWaiting) +
                                            " requests already wait for the daemon");
  }
  Control c;
  c.order = next_control_order_++;
  c.after_seq = front_seq_ + log_.size();
  c.type = std::string(type);
  c.body = std::move(body);
  c.body_fields = body_fields;
  c.on_reply = std::move(on_reply);
  controls_waiting_.push_back(std::move(c));
  return Status();
}

void Client::Impl::Post(std::function<void()> fn) {
  std::lock_guard<std::mutex> lk(cb_mu_);
  callbacks_.push_back(std::move(fn));
}

std::size_t Client::Impl::Poll() {
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard<std::mutex> lk(cb_mu_);
    ready.swap(callbacks_);
  }
  for (auto& fn : ready) fn();
  return ready.size();
}

Stats Client::Impl::GetStats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

// --- configs (game side) --------------------------------------------------------------------------------

const Value* Client::Impl::ResolveLocked(std::string_view key) const {
  // protocol.md section 7: local overrides, then this device's GameRamp config, then GameAnalytics.
  const std::string_view order[] = {"config/local", gameramp_topic_, "config/gameanalytics"};
  for (std::string_view topic : order) {
    auto it = topics_.find(topic);
    if (it == topics_.end()) continue;
    for (const auto& [k, v] : it->second) {
      if (k == key) return &v;
    }
  }
  return nullptr;
}

std::optional<Value> Client::Impl::Config(std::string_view key) const {
  std::lock_guard<std::mutex> lk(cfg_mu_);
  const Value* v = ResolveLocked(key);
  return v ? std::optional<Value>(*v) : std::nullopt;
}

Status Client::Impl::Subscribe(Text key, ConfigCallback callback, SubscriptionId* id) {
  if (key.is_null() || key.empty()) return Invalid("SubscribeConfig: key is null or empty");
  if (!callback) return Invalid("SubscribeConfig: callback is empty");
  SubscriptionId sid;
  bool known;
  {
    std::lock_guard<std::mutex> lk(cfg_mu_);
    sid = next_subscription_++;
    subscriptions_[sid] = Subscription{std::string(key.view()), std::make_shared<ConfigCallback>(std::move(callback))};
    known = ResolveLocked(key.view()) != nullptr;
  }
  if (known) {
    // A late subscriber gets the current value in the next Poll, like every other callback.
    Post([this, sid] {
      std::shared_ptr<ConfigCallback> cb;
      std::string k;
      Value value;
      {
        std::lock_guard<std::mutex> lk(cfg_mu_);
        auto it = subscriptions_.find(sid);
        if (it == subscriptions_.end()) return;
        const Value* v = ResolveLocked(it->second.key);
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

void Client::Impl::Unsubscribe(SubscriptionId id) {
  std::lock_guard<std::mutex> lk(cfg_mu_);
  subscriptions_.erase(id);
}

void Client::Impl::ApplyConfig(const std::string& topic, Value::Map values) {
  struct Change {
    std::shared_ptr<ConfigCallback> callback;
    std::string key;
    Value value;
  };
  std::vector<Change> changes;
  {
    std::lock_guard<std::mutex> lk(cfg_mu_);
    std::vector<std::optional<Value>> before;
    before.reserve(subscriptions_.size());
    for (const auto& [sid, sub] : subscriptions_) {
      const Value* v = ResolveLocked(sub.key);
      before.push_back(v ? std::optional<Value>(*v) : std::nullopt);
    }
    topics_[topic] = std::move(values);
    std::size_t i = 0;
    for (const auto& [sid, sub] : subscriptions_) {
      const Value* now = ResolveLocked(sub.key);
      const std::optional<Value>& was = before[i++];
      if (now == nullptr ? was.has_value() : (!was || *was != *now)) {
        changes.push_back(Change{sub.callback, sub.key, now ? *now : Value()});
      }
    }
  }
  for (const Change& c : changes) (*c.callback)(c.key, c.value);
}

// --- the I/O thread -------------------------------------------------------------------------------------

void Client::Impl::Run() {
  for (;;) {
    Clock::time_point now = Clock::now();
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stopping_ && now >= stop_deadline_) break;
    }
    if (running_.load(std::memory_order_acquire) == false && Drained()) break;
    try {
      MaybeLaunchDaemon(now);
      if (hello_due_at_ && now >= *hello_due_at_) SendHello(now);
      if (ready_ && now >= pause_until_) SendWork(now);
      CheckTimeouts(now);

      zmq::pollitem_t items[] = {
          {dealer_.handle(), 0, ZMQ_POLLIN, 0},
          {sub_.handle(), 0, ZMQ_POLLIN, 0},
          {monitor_.handle(), 0, ZMQ_POLLIN, 0},
      };
      zmq::poll(items, 3, settings_.send_interval);
      if (items[2].revents & ZMQ_POLLIN) HandleMonitor();
      if (items[0].revents & ZMQ_POLLIN) {
        zmq::message_t msg;
        while (dealer_.recv(msg, zmq::recv_flags::dontwait)) {
          if (std::optional<Value> reply = detail::Decode(msg.data(), msg.size())) HandleReply(*reply, Clock::now());
        }
      }
      if (items[1].revents & ZMQ_POLLIN) HandlePublication();
    } catch (const zmq::error_t&) {
      // EINTR and friends: the next round tries again; nothing here is worth killing the game for.
    }
  }
  RequeueAll();
  zmq_socket_monitor(dealer_.handle(), nullptr, 0);
  dealer_.close();
  sub_.close();
  monitor_.close();
  ctx_.close();
  daemon_.Stop(settings_.daemon.stop_timeout);
  std::lock_guard<std::mutex> lk(mu_);
  stats_.connected = false;
  stats_.daemon_pid = 0;
}

bool Client::Impl::Drained() {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_.queued == 0 && controls_waiting_.empty() && controls_ready_.empty() &&
         requests_.size() == event_requests_;
}

void Client::Impl::HandleMonitor() {
  zmq::message_t event, endpoint;
  while (monitor_.recv(event, zmq::recv_flags::dontwait)) {
    // Two frames: the event (id, value), then the endpoint, which we do not need.
    if (event.more() && !monitor_.recv(endpoint, zmq::recv_flags::dontwait)) continue;
    if (event.size() < 2) continue;
    std::uint16_t id;
    std::memcpy(&id, event.data(), sizeof id);
    if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
      transport_up_ = true;
      hello_due_at_ = Clock::now();
      launch_backoff_ = settings_.daemon.probe;
    } else if (id == ZMQ_EVENT_DISCONNECTED) {
      transport_up_ = false;
      ready_ = false;
      hello_due_at_.reset();
      hello_rid_.reset();
      RequeueAll();
      std::lock_guard<std::mutex> lk(mu_);
      stats_.connected = false;
    }
  }
}

void Client::Impl::SendHello(Clock::time_point now) {
  if (!transport_up_) return;
  const std::uint32_t rid = NextRid();
  std::string frame;
  Writer w(frame);
  w.Map(2 + hello_fields_);
  w.Str("type");
  w.Str("hello");
  w.Str("rid");
  w.UInt(rid);
  w.Raw(hello_body_);
  if (!SendFrame(frame.data(), frame.size())) return;  // the pipe is not attached yet: next round
  hello_rid_ = rid;
  hello_due_at_ = now + settings_.request_timeout;  // no welcome by then: say it again
}

bool Client::Impl::SendFrame(const char* data, std::size_t size) {
  zmq::message_t msg(data, size);
  return dealer_.send(msg, zmq::send_flags::dontwait).has_value();
}

void Client::Impl::SendWork(Clock::time_point now) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    while (!controls_waiting_.empty()) {
      controls_ready_.push_back(std::move(controls_waiting_.front()));
      controls_waiting_.pop_front();
    }
  }
  while (requests_.size() < settings_.max_in_flight) {
    std::uint64_t limit = UINT64_MAX;
    std::size_t waiting;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (cursor_ < front_seq_) cursor_ = front_seq_;
      if (!controls_ready_.empty()) limit = std::max(controls_ready_.front().after_seq, cursor_);
      waiting = static_cast<std::size_t>(std::min<std::uint64_t>(front_seq_ + log_.size(), limit) - cursor_);
    }
    if (waiting == 0) {
      if (controls_ready_.empty() || !SendControl(now)) return;
      continue;
    }
    // While batches are in flight, let the next one fill up (their acks wake us), unless a control
    // request waits behind these events or the game is quitting.
    bool stopping;
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopping = stopping_;
    }
    if (event_requests_ > 0 && waiting < max_batch_events_ && limit == UINT64_MAX && !stopping) return;
    if (!SendBatch(limit, now)) return;
  }
}

bool Client::Impl::SendBatch(std::uint64_t limit_seq, Clock::time_point now) {
  const std::uint32_t rid = NextRid();
  std::string& buf = batch_buf_;
  buf.assign(detail::kBatchHeaderRoom, '\0');  // the header goes in front once the count is known
  Request req;
  req.sent_at = now;
  bool more = true;
  while (more && req.seqs.size() < max_batch_events_) {
    std::lock_guard<std::mutex> lk(mu_);
    if (cursor_ < front_seq_) cursor_ = front_seq_;
    const std::uint64_t end = std::min<std::uint64_t>(front_seq_ + log_.size(), limit_seq);
    for (std::size_t scanned = 0; cursor_ < end && scanned < kScanChunk && req.seqs.size() < max_batch_events_;
         ++scanned) {
      Entry& e = log_[static_cast<std::size_t>(cursor_ - front_seq_)];
      if (!e.in_flight && !e.acked) {
        if (buf.size() + e.bytes.size() > max_message_bytes_) {
          if (req.seqs.empty()) {
            // Only possible when the daemon announced a smaller limit than protocol.md's: it would
            // refuse this event forever, so it is rejected here.
            e.acked = true;
            --stats_.queued;
            ++stats_.rejected;
            stats_.last_rejection = "an event of " + std::to_string(e.bytes.size()) +
                                    " bytes is over the daemon's max_message_bytes";
            ++cursor_;
            continue;
          }
          more = false;
          break;
        }
        buf += e.bytes;
        e.in_flight = true;
        e.rid = rid;
        ++stats_.in_flight;
        req.seqs.push_back(cursor_);
      }
      ++cursor_;
    }
    if (cursor_ >= end) more = false;
  }
  if (req.seqs.empty()) return true;  // everything in range was in flight already

  std::string head;
  Writer w(head);
  w.Map(3);
  w.Str("type");
  w.Str("events");
  w.Str("rid");
  w.UInt(rid);
  w.Str("events");
  w.Array(static_cast<std::uint32_t>(req.seqs.size()));
  const std::size_t start = detail::kBatchHeaderRoom - head.size();
  std::memcpy(&buf[start], head.data(), head.size());
  if (!SendFrame(buf.data() + start, buf.size() - start)) {
    Requeue(rid, std::move(req));  // not connected after all; the disconnect event follows
    return false;
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (std::uint64_t seq : req.seqs) {
      Entry& e = log_[static_cast<std::size_t>(seq - front_seq_)];
      if (e.sent) ++stats_.resent;
      e.sent = true;
    }
  }
  ++event_requests_;
  requests_.emplace(rid, std::move(req));
  return true;
}

bool Client::Impl::SendControl(Clock::time_point now) {
  Control& c = controls_ready_.front();
  const std::uint32_t rid = NextRid();
  std::string frame;
  Writer w(frame);
  w.Map(2 + c.body_fields);
  w.Str("type");
  w.Str(c.type);
  w.Str("rid");
  w.UInt(rid);
  w.Raw(c.body);
  if (!SendFrame(frame.data(), frame.size())) return false;
  Request req;
  req.control = std::move(c);
  req.sent_at = now;
  controls_ready_.pop_front();
  requests_.emplace(rid, std::move(req));
  return true;
}

void Client::Impl::HandleReply(const Value& reply, Clock::time_point now) {
  const Value* rid_value = reply.Find("rid");
  const std::optional<std::uint64_t> rid = rid_value ? rid_value->AsUInt() : std::nullopt;
  const std::string_view type = StrField(reply, "type");
  if (!rid) return;  // an error about a frame the daemon could not read: nothing of ours to retry
  if (hello_rid_ && *rid == *hello_rid_) {
    hello_rid_.reset();
    if (type != "welcome") return;  // refused (another protocol version): hello_due_at_ retries later
    hello_due_at_.reset();
    ready_ = true;
    ++welcomes_;
    if (const Value* limits = reply.Find("limits")) {
      if (std::uint64_t n = UIntField(*limits, "max_batch_events")) max_batch_events_ = std::min<std::size_t>(n, detail::kMaxBatchEvents);
      if (std::uint64_t n = UIntField(*limits, "max_message_bytes")) max_message_bytes_ = std::min<std::size_t>(n, detail::kMaxMessageBytes);
    }
    if (const Value* topics = reply.Find("topics"); topics && topics->AsArray()) {
      for (const Value& t : *topics->AsArray()) {
        const std::string* prefix = t.AsString();
        if (prefix && subscribed_.insert(*prefix).second) sub_.set(zmq::sockopt::subscribe, *prefix);
      }
    }
    std::lock_guard<std::mutex> lk(mu_);
    stats_.connected = true;
    stats_.reconnects = welcomes_ - 1;
    return;
  }
  auto it = requests_.find(static_cast<std::uint32_t>(*rid));
  if (it == requests_.end()) return;  // the answer to a request already resent
  Request req = std::move(it->second);
  requests_.erase(it);
  if (!req.control) --event_requests_;
  if (type == "error") {
    const std::string_view code = StrField(reply, "code");
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
  if (req.control) {
    if (const PurchaseTicket* ticket = std::get_if<PurchaseTicket>(&req.control->on_reply)) {
      HandlePurchaseReply(*ticket, reply);
    } else if (const ReplyCallback& callback = std::get<ReplyCallback>(req.control->on_reply)) {
      Deliver(callback, reply);
    }
    return;
  }
  MarkAcked(req, reply);
}

void Client::Impl::Deliver(const ReplyCallback& callback, const Value& reply) {
  Reply r;
  r.type = std::string(StrField(reply, "type"));
  r.ok = r.type != "error";
  if (!r.ok) {
    r.error_code = std::string(StrField(reply, "code"));
    r.message = std::string(StrField(reply, "message"));
  }
  r.body = reply;
  Post([callback, r = std::move(r)] { callback(r); });
}

void Client::Impl::MarkAcked(const Request& req, const Value& reply) {
  const bool is_ack = StrField(reply, "type") == "ack";
  std::lock_guard<std::mutex> lk(mu_);
  for (std::uint64_t seq : req.seqs) {
    if (seq < front_seq_) continue;  // dropped while in flight
    Entry& e = log_[static_cast<std::size_t>(seq - front_seq_)];
    if (e.acked) continue;
    e.acked = true;
    --stats_.queued;
    ++stats_.acknowledged;
    if (e.in_flight) {
      e.in_flight = false;
      --stats_.in_flight;
    }
  }
  while (!log_.empty() && log_.front().acked) {
    log_.pop_front();
    ++front_seq_;
  }
  if (is_ack) {
    stats_.stored += UIntField(reply, "stored");
    stats_.duplicates += UIntField(reply, "duplicates");
    if (const Value* rejected = reply.Find("rejected"); rejected && rejected->AsArray() && !rejected->AsArray()->empty()) {
      stats_.rejected += rejected->AsArray()->size();
      stats_.last_rejection = std::string(StrField(rejected->AsArray()->back(), "message"));
    }
  } else {
    // The daemon refused the whole batch; it would refuse it again, so it counts as rejected.
    stats_.rejected += req.seqs.size();
    stats_.last_rejection = std::string(StrField(reply, "code")) + ": " + std::string(StrField(reply, "message"));
  }
}

void Client::Impl::Requeue(std::uint32_t rid, Request req) {
  if (req.control) {
    // Back in front of the controls not yet sent, in the order the game made them.
    auto pos = std::find_if(controls_ready_.begin(), controls_ready_.end(),
                            [&](const Control& c) { return c.order > req.control->order; });
    controls_ready_.insert(pos, std::move(*req.control));
    return;
  }
  std::lock_guard<std::mutex> lk(mu_);
  for (std::uint64_t seq : req.seqs) {
    if (seq < front_seq_) continue;
    Entry& e = log_[static_cast<std::size_t>(seq - front_seq_)];
    if (e.in_flight && e.rid == rid) {
      e.in_flight = false;
      --stats_.in_flight;
      cursor_ = std::min(cursor_, seq);
    }
  }
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

void Client::Impl::HandlePublication() {
  zmq::message_t topic_frame, payload;
  while (sub_.recv(topic_frame, zmq::recv_flags::dontwait)) {
    if (!topic_frame.more() || !sub_.recv(payload, zmq::recv_flags::dontwait)) continue;
    for (bool more = payload.more(); more;) {  // protocol.md: two frames; later ones are not ours
      zmq::message_t rest;
      if (!sub_.recv(rest, zmq::recv_flags::dontwait)) break;
      more = rest.more();
    }
    std::string topic(static_cast<const char*>(topic_frame.data()), topic_frame.size());
    if (topic == purchase_topic_) {
      // No version check here: verdicts never change and each id is handled once, so a repeat is
      // harmless, and a daemon with a fresh store (versions from 1 again) is still heard.
      if (std::optional<Value> publication = detail::Decode(payload.data(), payload.size())) {
        HandlePurchaseTopic(*publication);
      }
      continue;
    }
    // The subscription prefixes also match other devices' topics (purchase/<id>x, and GameRamp topics
    // on a shared server): only this client's config topics are kept.
    if (topic.compare(0, kConfigPrefix.size(), kConfigPrefix) != 0) continue;
    if (topic.compare(0, kGameRampPrefix.size(), kGameRampPrefix) == 0 &&
        topic.compare(kGameRampPrefix.size(), std::string::npos, game_.device_id) != 0) {
      continue;
    }
    std::optional<Value> publication = detail::Decode(payload.data(), payload.size());
    if (!publication) continue;
    const std::uint64_t version = UIntField(*publication, "version");
    std::uint64_t& known = versions_[topic];
    if (version <= known) continue;  // a late-subscriber repeat of what we have
    known = version;
    const Value* values = publication->Find("values");
    Value::Map map = values && values->AsMap() ? *values->AsMap() : Value::Map();
    Post([this, topic = std::move(topic), map = std::move(map)]() mutable { ApplyConfig(topic, std::move(map)); });
  }
}

void Client::Impl::MaybeLaunchDaemon(Clock::time_point now) {
  if (settings_.daemon.command.empty()) return;
  const bool alive = daemon_.Running();
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.daemon_pid = daemon_.pid();
  }
  if (transport_up_ || alive || now < next_launch_) return;
  Status started = daemon_.Start(settings_.daemon.command, settings_.daemon.log_path);
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.daemon_pid = daemon_.pid();
    if (!started) stats_.last_rejection = "daemon launch: " + started.message();
  }
  // If it dies before answering (a port taken, a broken install), try again later and less often.
  next_launch_ = now + launch_backoff_;
  launch_backoff_ = std::min(launch_backoff_ * 2, std::chrono::duration_cast<std::chrono::milliseconds>(kMaxLaunchBackoff));
}

// --- Client: the public face ----------------------------------------------------------------------------

Client::Client() : impl_(std::make_unique<Impl>()) {}
Client::~Client() = default;

Status Client::Connect(const GameInfo& game, const Settings& settings) { return impl_->Connect(game, settings); }
void Client::Shutdown(std::optional<std::chrono::milliseconds> grace) { impl_->Shutdown(grace); }
std::size_t Client::Poll() { return impl_->Poll(); }
Stats Client::GetStats() const { return impl_->GetStats(); }

Status Client::SubscribeConfig(Text key, ConfigCallback callback, SubscriptionId* id) {
  return impl_->Subscribe(key, std::move(callback), id);
}
void Client::Unsubscribe(SubscriptionId id) { impl_->Unsubscribe(id); }
void Client::SetPurchaseHandler(PurchaseCallback handler) { impl_->SetPurchaseHandler(std::move(handler)); }

std::optional<Value> Client::GetConfig(Text key) const {
  if (key.is_null()) return std::nullopt;
  return impl_->Config(key.view());
}
std::string Client::GetString(Text key, std::string fallback) const {
  std::optional<Value> v = GetConfig(key);
  const std::string* s = v ? v->AsString() : nullptr;
  return s ? *s : fallback;
}
std::int64_t Client::GetInt(Text key, std::int64_t fallback) const {
  std::optional<Value> v = GetConfig(key);
  return v ? v->AsInt().value_or(fallback) : fallback;
}
double Client::GetDouble(Text key, double fallback) const {
  std::optional<Value> v = GetConfig(key);
  return v ? v->AsDouble().value_or(fallback) : fallback;
}
bool Client::GetBool(Text key, bool fallback) const {
  std::optional<Value> v = GetConfig(key);
  return v ? v->AsBool().value_or(fallback) : fallback;
}

}  // namespace engine_bridge
