// Client::Impl: the state shared by the game's threads and the background I/O thread. Internal.
//
// Threads and locks:
// - game threads call Track* (→ Enqueue), the control requests, Poll and the config getters;
// - the I/O thread (Run) owns the sockets and everything under "I/O thread only";
// - mu_ guards the event log and the counters, cb_mu_ the callbacks waiting for Poll, cfg_mu_ the configs,
//   purchase_mu_ the purchases waiting for a verdict.
// No lock is ever held across a socket call or a user callback.
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <variant>

#include "daemon_process.hpp"
#include "engine_bridge/engine_bridge.hpp"
#include "wire.hpp"

namespace engine_bridge {

namespace detail {
/// A field a typed helper fills in; a monostate value means "absent, leave it out".
struct Field {
  std::string_view key;
  std::variant<std::monostate, std::string_view, std::int64_t, double> value;
};
}  // namespace detail

class Client::Impl {
 public:
  using Clock = std::chrono::steady_clock;
  using Field = detail::Field;

  Impl() = default;
  ~Impl() { Shutdown(std::nullopt); }

  Status Connect(const GameInfo& game, const Settings& settings);
  void Shutdown(std::optional<std::chrono::milliseconds> grace);

  /// Builds one event (checking `fixed` strings and every `extra` field) and enqueues it.
  Status Emit(std::string_view api, std::string_view category, std::initializer_list<Field> fixed,
              const Fields& extra, const EventOptions* options);
  /// Which purchase a `purchase` request carries, so its reply can be matched to the waiting call.
  struct PurchaseTicket {
    std::string id;
    std::string store;
    std::uint64_t number = 0;  // tells apart two calls for the same purchase id
  };
  /// What a control request's reply goes to: the caller's callback, or the purchase bookkeeping.
  using OnReply = std::variant<ReplyCallback, PurchaseTicket>;

  /// Queues a request that is sent after every event tracked before it; `body` holds `body_fields`
  /// pre-encoded key/value pairs.
  Status EnqueueControl(std::string_view api, std::string_view type, std::string body,
                        std::uint32_t body_fields, OnReply on_reply);
  /// Registers `callback` to wait for the verdict on purchase `id`, then queues the request.
  Status EnqueuePurchase(std::string_view api, std::string id, std::string_view store, std::string body,
                         std::uint32_t body_fields, PurchaseCallback callback);
  void SetPurchaseHandler(PurchaseCallback handler);

  Status Subscribe(Text key, ConfigCallback callback, SubscriptionId* id);
  void Unsubscribe(SubscriptionId id);
  std::optional<Value> Config(std::string_view key) const;
  std::size_t Poll();
  Stats GetStats() const;

 private:
  /// One event not yet acknowledged, already msgpack.
  struct Entry {
    std::string bytes;
    std::uint32_t rid = 0;   // the request that carries it while in_flight
    bool in_flight = false;
    bool acked = false;
    bool sent = false;       // sent at least once: the next send counts as a resend
  };
  struct Control {
    std::uint64_t order = 0;      // keeps requeued controls in the order the game made them
    std::uint64_t after_seq = 0;  // events with a smaller seq go first
    std::string type;
    std::string body;
    std::uint32_t body_fields = 0;
    OnReply on_reply;
  };
  struct Request {
    std::vector<std::uint64_t> seqs;  // an `events` batch, or
    std::optional<Control> control;   // a control request
    Clock::time_point sent_at;
  };
  struct Subscription {
    std::string key;
    std::shared_ptr<ConfigCallback> callback;
  };
  struct PurchaseWaiter {
    std::uint64_t number = 0;
    PurchaseCallback callback;
  };

  // --- game side ---
  void Enqueue(std::string bytes);
  void Post(std::function<void()> fn);
  void ApplyConfig(const std::string& topic, Value::Map values);
  const Value* ResolveLocked(std::string_view key) const;

  // --- I/O thread ---
  void Run();
  void OpenSockets();
  void HandleMonitor();
  void HandleReply(const Value& reply, Clock::time_point now);
  void HandlePublication();
  void SendHello(Clock::time_point now);
  void SendWork(Clock::time_point now);
  /// False only when the socket refused the frame (not connected after all).
  bool SendBatch(std::uint64_t limit_seq, Clock::time_point now);
  bool SendControl(Clock::time_point now);
  bool SendFrame(const char* data, std::size_t size);
  void MarkAcked(const Request& req, const Value& ack);
  void Requeue(std::uint32_t rid, Request req);
  void RequeueAll();
  void CheckTimeouts(Clock::time_point now);
  void MaybeLaunchDaemon(Clock::time_point now);
  bool Drained();
  std::uint32_t NextRid() { return next_rid_++; }
  void Deliver(const ReplyCallback& callback, const Value& reply);

  // --- purchase verdicts (purchases.cpp) ---
  /// The I/O thread's handling of a `purchase` reply: an error or a verdict goes to the waiting call,
  /// `pending` leaves it waiting for the topic.
  void HandlePurchaseReply(const PurchaseTicket& ticket, const Value& reply);
  /// The I/O thread's handling of a `purchase/<device_id>` publication.
  void HandlePurchaseTopic(const Value& publication);
  /// Hands a verdict to every call waiting for its id, or, the first time the id is seen and no call
  /// waits, to the game-wide handler.
  void Settle(PurchaseResult verdict, bool from_topic);
  /// Runs in Poll(): verdicts for the game-wide handler, if one is set.
  void DeliverUnclaimed();

  // Fixed at Connect.
  GameInfo game_;
  Settings settings_;
  std::string hello_body_;
  std::uint32_t hello_fields_ = 0;
  std::atomic<bool> running_{false};
  std::thread thread_;

  // Guarded by mu_.
  mutable std::mutex mu_;
  std::deque<Entry> log_;
  std::uint64_t front_seq_ = 0;  // seq of log_.front()
  std::uint64_t cursor_ = 0;     // every entry before it is in flight or acknowledged
  std::deque<Control> controls_waiting_;
  std::uint64_t next_control_order_ = 0;
  bool stopping_ = false;
  Clock::time_point stop_deadline_;
  Stats stats_;  // queued and in_flight are kept up to date with log_

  // Guarded by cb_mu_.
  std::mutex cb_mu_;
  std::vector<std::function<void()>> callbacks_;

  // Guarded by cfg_mu_.
  mutable std::mutex cfg_mu_;
  std::map<std::string, Value::Map, std::less<>> topics_;
  std::map<SubscriptionId, Subscription> subscriptions_;
  SubscriptionId next_subscription_ = 1;
  std::string gameramp_topic_;

  // Guarded by purchase_mu_.
  std::mutex purchase_mu_;
  std::unordered_map<std::string, std::vector<PurchaseWaiter>> awaiting_;  // purchase id -> calls waiting
  std::unordered_set<std::string> reported_;  // ids whose verdict reached a callback or the handler
  std::vector<PurchaseResult> unclaimed_;     // verdicts for the handler, not yet handed over
  std::shared_ptr<PurchaseCallback> purchase_handler_;
  std::uint64_t next_purchase_number_ = 1;

  // I/O thread only (and Connect/Shutdown while the thread is not running).
  zmq::context_t ctx_;
  zmq::socket_t dealer_, sub_, monitor_;
  bool transport_up_ = false;  // the monitor saw a handshake and no disconnect since
  bool ready_ = false;         // a welcome came on this connection
  std::optional<Clock::time_point> hello_due_at_;  // when to (re)send hello
  std::optional<std::uint32_t> hello_rid_;
  std::uint64_t welcomes_ = 0;
  std::uint32_t next_rid_ = 1;
  std::unordered_map<std::uint32_t, Request> requests_;
  std::size_t event_requests_ = 0;  // requests_ that are batches
  std::deque<Control> controls_ready_;
  std::size_t max_batch_events_ = detail::kMaxBatchEvents;
  std::size_t max_message_bytes_ = detail::kMaxMessageBytes;
  Clock::time_point pause_until_;   // after an `unavailable`: let the store recover
  std::set<std::string> subscribed_;
  std::map<std::string, std::uint64_t> versions_;
  std::string purchase_topic_;  // purchase/<device_id>
  std::string batch_buf_;
  detail::DaemonProcess daemon_;
  Clock::time_point next_launch_;
  std::chrono::milliseconds launch_backoff_{0};
};

}  // namespace engine_bridge
