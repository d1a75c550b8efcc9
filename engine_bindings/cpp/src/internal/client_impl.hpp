// Client::Impl: the parts of the client and the background I/O thread that drives them. Internal.
//
// Threads and locks:
// - game threads call Track* (→ EventQueue::Push), the control requests, Poll and the config getters;
// - the I/O thread (Run, link.cpp) owns the sockets and everything under "I/O thread only";
// - each part guards its own state: the EventQueue its events, controls and counters, the CallbackQueue the
//   callbacks waiting for Poll, the ConfigStore the configs, PurchaseVerdicts the purchases waiting.
// No lock is ever held across a socket call or a user callback.
//
// The I/O thread's work is split by concern: link.cpp (sockets, connection state, the launcher, the loop),
// ingress_link.cpp (hello, batches, acks, control requests), config_link.cpp (publications).
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "callback_queue.hpp"
#include "config_store.hpp"
#include "console.hpp"
#include "curve_keys.hpp"
#include "daemon_process.hpp"
#include "engine_bridge/engine_bridge.hpp"
#include "event_queue.hpp"
#include "purchase_verdicts.hpp"
#include "wire.hpp"

namespace engine_bridge {

class Client::Impl {
 public:
  using Clock = std::chrono::steady_clock;

  Impl() = default;
  ~Impl() { Shutdown(std::nullopt); }

  Status Connect(const GameInfo& game, const Settings& settings);
  void Shutdown(std::optional<std::chrono::milliseconds> grace);
  bool Running() const noexcept { return running_.load(std::memory_order_acquire); }

  /// Checks and encodes one event, then queues it.
  Status Emit(std::string_view api, std::string_view category, std::initializer_list<detail::FixedField> fixed,
              const Fields& extra, const EventOptions* options);
  /// Queues a request that is sent after every event tracked before it.
  Status EnqueueControl(std::string_view api, std::string_view type, detail::Body body, detail::OnReply on_reply);
  Status EnqueuePurchase(std::string_view api, const Purchase& purchase, PurchaseCallback callback, std::string* id);

  // The parts the public face uses directly.
  detail::CallbackQueue callbacks;
  detail::Console console{callbacks};
  detail::EventQueue queue;
  detail::ConfigStore configs{callbacks};
  detail::PurchaseVerdicts purchases{callbacks};
  detail::SharedLimits limits;
  detail::Handler<ProviderRefusalCallback> refusal_handler;
  detail::Handler<ConnectionCallback> connection_handler;

 private:
  struct Request {
    std::vector<std::uint64_t> seqs;        // an `events` batch, or
    std::optional<detail::Control> control;  // a control request
    Clock::time_point sent_at;
  };

  // --- link.cpp: sockets, connection state, the launcher, the loop ---
  void OpenSockets();
  void CloseSockets();
  void Run();
  void Turn(Clock::time_point now);
  bool Drained();
  void HandleMonitor(Clock::time_point now);
  /// A new ConnectionState: Stats, the game's handler, and (for the problems and the way back) the log.
  void SetState(ConnectionState state, std::string detail);
  void CheckUnreachable(Clock::time_point now);
  void MaybeLaunchDaemon(Clock::time_point now);
  /// Settings::relay at Connect: checks it, reads or makes the key pair, and points the endpoints at the relay.
  Status UseRelay();
  /// A relay that refused our CURVE handshake: hang up, and dial again after a growing delay (libzmq alone
  /// would retry every 100 ms, as its delay grows only while TCP connections fail).
  void RelayRefusedUs(Clock::time_point now);
  /// "daemon" or "relay", for messages.
  const char* Peer() const noexcept { return relay_ ? "relay" : "daemon"; }

  // --- ingress_link.cpp: hello, batches, acks, control requests, resends ---
  void SendHello(Clock::time_point now);
  void SendWork(Clock::time_point now);
  /// False only when the socket refused the frame (not connected after all).
  bool SendBatch(std::uint64_t limit_seq, Clock::time_point now);
  bool SendControl(Clock::time_point now);
  bool SendFrame(const std::string& frame, std::size_t offset = 0);
  void HandleFrame(const zmq::message_t& frame, Clock::time_point now);
  void HandleReply(const Value& reply, Clock::time_point now);
  void HandleWelcome(const Value& welcome);
  void HandleAck(const Request& req, const Value& reply, Clock::time_point now);
  void Requeue(std::uint32_t rid, Request req);
  void RequeueAll();
  void CheckTimeouts(Clock::time_point now);
  std::uint32_t NextRid() { return next_rid_++; }

  // --- config_link.cpp ---
  void HandlePublications();

  // Fixed at Connect.
  GameInfo game_;
  Settings settings_;
  detail::Body hello_body_;
  std::string purchase_topic_;  // purchase/<device_id>
  std::string gameanalytics_topic_;  // config/gameanalytics/<device_id>
  bool relay_ = false;          // straight to a relay over CURVE (Settings::relay)
  detail::CurveKeyPair keys_;   // this install's own pair, when relay_; its public key prefixes our topics
  std::optional<Clock::time_point> redial_at_;  // when to dial a relay that refused us again
  std::chrono::milliseconds redial_backoff_{0};
  std::atomic<bool> running_{false};
  std::thread thread_;

  // Shutdown's request to the I/O thread.
  std::mutex stop_mu_;
  bool stopping_ = false;
  Clock::time_point stop_deadline_;

  // I/O thread only (and Connect/Shutdown while the thread is not running).
  zmq::context_t ctx_;
  zmq::socket_t dealer_, sub_, monitor_;
  ConnectionState state_ = ConnectionState::Connecting;
  bool tcp_up_ = false;        // the monitor saw a TCP connection and no disconnect since
  bool transport_up_ = false;  // ... and a finished ZeroMQ handshake
  bool refused_ = false;       // a connection attempt failed since the last one that worked
  Clock::time_point down_since_;   // since when no daemon has said welcome
  Clock::time_point last_reached_;  // when a TCP connection was last made or lost
  bool ready_ = false;         // a welcome came on this connection
  std::optional<Clock::time_point> hello_due_at_;  // when to (re)send hello
  std::optional<std::uint32_t> hello_rid_;
  std::uint64_t welcomes_ = 0;
  std::uint32_t next_rid_ = 1;
  std::unordered_map<std::uint32_t, Request> requests_;
  std::size_t event_requests_ = 0;  // requests_ that are batches
  std::deque<detail::Control> controls_ready_;
  detail::Limits wire_limits_;      // the welcome's, for batching
  Clock::time_point pause_until_;   // after an `unavailable`: let the store recover
  std::set<std::string> subscribed_;
  std::map<std::string, std::uint64_t, std::less<>> versions_;  // the highest version seen per config topic
  std::string batch_buf_;
  detail::DaemonProcess daemon_;
  bool daemon_by_pipe_ = false;  // the bundled daemon, run with --parent-pipe (else a command of the game's own)
  Clock::time_point next_launch_;
  std::chrono::milliseconds launch_backoff_{0};
};

}  // namespace engine_bridge
