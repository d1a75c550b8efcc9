// The connection to the daemon: the sockets, what the client knows of the peer (ConnectionState, told to the
// game and, once per outage, to its console), the launcher, and the I/O thread's loop.
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#if !defined(_WIN32)
#include <unistd.h>
#endif

#include "check.hpp"
#include "client_impl.hpp"

namespace engine_bridge {

namespace {

constexpr auto kMaxLaunchBackoff = std::chrono::milliseconds(30000);
// How long connections must have been refused before the game is told that no daemon runs: long enough
// for a daemon that is starting with the game, short enough to be seen in the first seconds of play.
constexpr auto kUnreachableAfter = std::chrono::milliseconds(2000);
// With a launch command: the daemon we start takes a few seconds to listen.
constexpr auto kLaunchGrace = std::chrono::milliseconds(10000);
// libzmq reconnects every 100 ms, doubling up to this: loopback attempts cost nothing, and the daemon is
// found within a second of coming back, however long it was away.
constexpr int kReconnectMaxMs = 1000;
// A peer that accepts the TCP connection but never completes the ZeroMQ handshake is given this long.
constexpr int kHandshakeMs = 3000;
// A relay is across the internet: back off further between attempts, as protocol.md section 1 asks.
constexpr int kRelayReconnectMaxMs = 5000;
// A relay that refuses our handshake is dialled again after 1 s, doubling up to a minute.
constexpr auto kRelayRedialFirst = std::chrono::milliseconds(1000);
constexpr auto kRelayRedialMax = std::chrono::milliseconds(60000);

// A relay that drops our CURVE handshake: a wrong server key, or our key is not on its allow-list.
std::string RelayRefused(const std::string& endpoint) {
  return "the relay at " + endpoint + " refuses this client's CURVE handshake: Settings::relay.public_key is not "
         "the relay's key (`engine-bridge keys` on the relay), or the relay's allow-list does not hold this "
         "install's key. Events wait in memory until it accepts";
}

// protocol.md section 1: a game's id and its default endpoints, as the daemon derives them.
bool ValidGame(const std::string& game) {
  if (game.empty() || game.size() > 32) return false;
  for (std::size_t i = 0; i < game.size(); ++i) {
    const char c = game[i];
    const bool plain = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!plain && (i == 0 || (c != '_' && c != '-'))) return false;
  }
  return true;
}

[[maybe_unused]] std::uint32_t Fnv1a(const std::string& text) {  // Windows' ports
  std::uint32_t hash = 0x811c9dc5u;
  for (unsigned char c : text) hash = (hash ^ c) * 0x01000193u;
  return hash;
}

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::string(value) : std::string();
}

std::pair<std::string, std::string> GameEndpoints(const std::string& game) {
#if defined(_WIN32)
  const unsigned port = 40000 + 2 * (Fnv1a(game) % 4500);
  return {"tcp://127.0.0.1:" + std::to_string(port), "tcp://127.0.0.1:" + std::to_string(port + 1)};
#else
  std::string runtime = Env("XDG_RUNTIME_DIR");
  if (runtime.empty()) {
    for (const char* name : {"TMPDIR", "TEMP", "TMP"}) {
      if (runtime.empty()) runtime = Env(name);
    }
    if (runtime.empty()) runtime = "/tmp";
    while (runtime.size() > 1 && runtime.back() == '/') runtime.pop_back();
#if !defined(__APPLE__)
    runtime += "/engine-bridge-" + std::to_string(::getuid());
#endif
  }
  const std::string folder = "ipc://" + runtime + "/engine-bridge/" + game + "/";
  return {folder + "ingress", folder + "configs"};
#endif
}

}  // namespace

Status Client::Impl::Connect(const GameInfo& game, const Settings& settings) {
  if (thread_.joinable()) return Status(ErrorCode::AlreadyConnected, "Connect: already connected; Shutdown() first");
  if (Status s = detail::CheckGameInfo(game); !s) return s;
  if (settings.queue_capacity == 0) return detail::Invalid("Connect: Settings.queue_capacity must be at least 1");
  if (settings.max_in_flight == 0) return detail::Invalid("Connect: Settings.max_in_flight must be at least 1");
  if (settings.send_interval.count() <= 0 || settings.request_timeout.count() <= 0) {
    return detail::Invalid("Connect: Settings.send_interval and request_timeout must be positive");
  }
  if (!settings.game.empty() && !ValidGame(settings.game)) {
    return detail::Invalid("Connect: Settings.game: \"" + settings.game + "\" is not 1-32 characters of a-z 0-9 _ -, "
                           "starting with a letter or digit");
  }
  if ((!settings.daemon.command.empty() || !settings.daemon.executable.empty()) && !detail::CanLaunchDaemon()) {
    return detail::Invalid("Connect: Settings.daemon: launching the daemon is not supported on this platform");
  }

  game_ = game;
  settings_ = settings;
  relay_ = !settings_.relay.endpoint.empty();
  if (relay_) {
    if (Status s = UseRelay(); !s) return s;
  }
  const auto [default_ingress, default_configs] = settings_.game.empty()
      ? std::pair<std::string, std::string>("tcp://127.0.0.1:5555", "tcp://127.0.0.1:5556")
      : GameEndpoints(settings_.game);
  if (settings_.ingress_endpoint.empty()) settings_.ingress_endpoint = default_ingress;
  if (settings_.configs_endpoint.empty()) settings_.configs_endpoint = default_configs;
  daemon_by_pipe_ = !settings_.daemon.executable.empty();
  if (daemon_by_pipe_) {
    // The bundled daemon, found next to the game's executable, on this game's endpoints, tied to this process.
    settings_.daemon.command = {detail::ResolveFrom(detail::ExecutableDirectory(), settings_.daemon.executable),
                                "run", "--ingress", settings_.ingress_endpoint, "--publish",
                                settings_.configs_endpoint, "--parent-pipe"};
    if (!settings_.game.empty()) settings_.daemon.command.insert(settings_.daemon.command.end(), {"--game", settings_.game});
    settings_.daemon.command.insert(settings_.daemon.command.end(), settings_.daemon.arguments.begin(),
                                    settings_.daemon.arguments.end());
  }
  hello_body_ = detail::HelloBody(game_, settings_.game);
  purchase_topic_ = std::string(detail::kPurchasePrefix) + game_.device_id;
  gameanalytics_topic_ = std::string(detail::kGameAnalyticsTopic) + "/" + game_.device_id;
  configs.SetDevice(game_.device_id);
  try {
    OpenSockets();
  } catch (const zmq::error_t& e) {
    CloseSockets();
    // A malformed endpoint is the caller's mistake; anything else (out of file descriptors) is not.
    const bool bad_endpoint = e.num() == EINVAL || e.num() == EPROTONOSUPPORT || e.num() == ENOCOMPATPROTO;
    return Status(bad_endpoint ? ErrorCode::InvalidArgument : ErrorCode::Internal,
                  "Connect: cannot open sockets to " + settings_.ingress_endpoint + " and " +
                      settings_.configs_endpoint + ": " + e.what());
  }
  queue.Open(settings_.queue_capacity);
  {
    std::lock_guard<std::mutex> lk(stop_mu_);
    stopping_ = false;
  }
  const Clock::time_point now = Clock::now();
  state_ = ConnectionState::Connecting;
  queue.Update([](Stats& s) { s.connection = ConnectionState::Connecting; });
  tcp_up_ = transport_up_ = refused_ = ready_ = false;
  down_since_ = now;
  last_reached_ = Clock::time_point();
  hello_due_at_.reset();
  hello_rid_.reset();
  welcomes_ = 0;
  requests_.clear();
  event_requests_ = 0;
  wire_limits_ = limits.Get();
  pause_until_ = Clock::time_point();
  redial_at_.reset();
  redial_backoff_ = std::chrono::milliseconds(0);
  launch_backoff_ = settings_.daemon.probe;
  next_launch_ = now + settings_.daemon.probe;
  running_.store(true, std::memory_order_release);
  thread_ = std::thread([this] { Run(); });
  return Status();
}

Status Client::Impl::UseRelay() {
  const RelayConnection& relay = settings_.relay;
  if (!settings_.daemon.command.empty() || !settings_.daemon.executable.empty()) {
    return detail::Invalid("Connect: Settings.relay and Settings.daemon: a client straight to a relay never launches "
                           "a daemon; set one or the other");
  }
  if (!zmq_has("curve")) {
    return Status(ErrorCode::Internal, "Connect: Settings.relay: this libzmq was built without CURVE security");
  }
  if (!detail::IsZ85Key(relay.public_key)) {
    return detail::Invalid("Connect: Settings.relay.public_key: the relay's public key is 40 Z85 characters "
                           "(`engine-bridge keys` on the relay), got " + std::to_string(relay.public_key.size()) +
                           " characters that are not one");
  }
  if (relay.key_file.empty()) {
    return detail::Invalid("Connect: Settings.relay.key_file: the path of this install's key pair is required "
                           "(where the game keeps its save data)");
  }
  if (Status s = detail::LoadOrMakeKeyPair(relay.key_file, keys_); !s) return s;
  settings_.ingress_endpoint = relay.endpoint;
  settings_.configs_endpoint = relay.configs_endpoint;
  return Status();
}

void Client::Impl::OpenSockets() {
  ctx_ = zmq::context_t(1);
  // A daemon we launch runs on this machine: look for it every 100 ms until it listens.
  const int reconnect_max = relay_ ? kRelayReconnectMaxMs : settings_.daemon.command.empty() ? kReconnectMaxMs : 0;
  // Straight to a relay: CURVE, the relay's key as the server's, ours as the client's (protocol.md 11.1).
  const auto secure = [this](zmq::socket_t& socket) {
    if (!relay_) return;
    socket.set(zmq::sockopt::curve_serverkey, settings_.relay.public_key);
    socket.set(zmq::sockopt::curve_publickey, keys_.public_key);
    socket.set(zmq::sockopt::curve_secretkey, keys_.secret_key);
  };
  dealer_ = zmq::socket_t(ctx_, zmq::socket_type::dealer);
  dealer_.set(zmq::sockopt::linger, 0);
  secure(dealer_);
  // Queue only to a connection whose handshake is done: what we send then goes to a daemon that is there.
  dealer_.set(zmq::sockopt::immediate, 1);
  dealer_.set(zmq::sockopt::reconnect_ivl, 100);
  dealer_.set(zmq::sockopt::reconnect_ivl_max, reconnect_max);
  dealer_.set(zmq::sockopt::handshake_ivl, kHandshakeMs);
  dealer_.set(zmq::sockopt::heartbeat_ivl, 2000);  // notice a daemon that hangs without closing
  dealer_.set(zmq::sockopt::heartbeat_timeout, 6000);
  dealer_.set(zmq::sockopt::sndhwm, 0);
  // The monitor tells us about every (re)connect, so we say hello again at once, and about what went wrong.
  const std::string monitor_endpoint =
      "inproc://engine-bridge-monitor-" + std::to_string(reinterpret_cast<std::uintptr_t>(this));
  if (zmq_socket_monitor(dealer_.handle(), monitor_endpoint.c_str(),
                         ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                             ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                             ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_DISCONNECTED) != 0) {
    throw zmq::error_t();
  }
  monitor_ = zmq::socket_t(ctx_, zmq::socket_type::pair);
  monitor_.set(zmq::sockopt::linger, 0);
  monitor_.connect(monitor_endpoint);
  dealer_.connect(settings_.ingress_endpoint);

  sub_ = zmq::socket_t(ctx_, zmq::socket_type::sub);
  sub_.set(zmq::sockopt::linger, 0);
  sub_.set(zmq::sockopt::reconnect_ivl, 100);
  sub_.set(zmq::sockopt::reconnect_ivl_max, reconnect_max);
  secure(sub_);
  versions_.clear();
  if (relay_) {
    // The relay publishes our devices' topics behind our public key (protocol.md 11.4), and grants no other
    // prefix: our key alone brings every topic of this device, current values at once.
    sub_.set(zmq::sockopt::subscribe, keys_.public_key);
    subscribed_ = {keys_.public_key};
    if (!settings_.configs_endpoint.empty()) sub_.connect(settings_.configs_endpoint);
    return;
  }
  // Subscribe before the welcome (which lists the same two): a late subscriber gets every config topic's
  // current value at once, and this device's recent purchase verdicts.
  sub_.set(zmq::sockopt::subscribe, detail::kConfigPrefix);
  sub_.set(zmq::sockopt::subscribe, purchase_topic_);
  subscribed_ = {std::string(detail::kConfigPrefix), purchase_topic_};
  sub_.connect(settings_.configs_endpoint);
}

void Client::Impl::CloseSockets() {
  if (dealer_.handle() != nullptr) zmq_socket_monitor(dealer_.handle(), nullptr, 0);
  dealer_.close();
  sub_.close();
  monitor_.close();
  ctx_.close();
}

void Client::Impl::Shutdown(std::optional<std::chrono::milliseconds> grace) {
  if (!thread_.joinable()) return;
  running_.store(false, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lk(stop_mu_);
    stopping_ = true;
    stop_deadline_ = Clock::now() + grace.value_or(settings_.shutdown_grace);
  }
  thread_.join();
}

// --- the I/O thread -----------------------------------------------------------------------------------------

void Client::Impl::Run() {
  for (;;) {
    const Clock::time_point now = Clock::now();
    {
      std::lock_guard<std::mutex> lk(stop_mu_);
      if (stopping_ && now >= stop_deadline_) break;
    }
    if (!Running() && Drained()) break;
    try {
      Turn(now);
    } catch (const std::exception& e) {
      // EINTR and friends, or memory running out: the next turn tries again; nothing here is worth killing
      // the game for.
      queue.Update([&](Stats& s) { s.last_error = std::string("I/O thread: ") + e.what(); });
    }
  }
  try {
    RequeueAll();
  } catch (const std::exception&) {
    // Out of memory while putting back what was in flight: those events wait in the queue all the same.
  }
  CloseSockets();
  daemon_.Stop(settings_.daemon.stop_timeout);
  queue.Update([](Stats& s) {
    s.connected = false;
    s.daemon_pid = 0;
  });
}

void Client::Impl::Turn(Clock::time_point now) {
  if (redial_at_ && now >= *redial_at_) {
    redial_at_.reset();
    dealer_.connect(settings_.ingress_endpoint);
    if (!settings_.configs_endpoint.empty()) sub_.connect(settings_.configs_endpoint);
  }
  MaybeLaunchDaemon(now);
  CheckUnreachable(now);
  console.Tick(now);
  if (hello_due_at_ && now >= *hello_due_at_) SendHello(now);
  if (ready_ && now >= pause_until_) SendWork(now);
  CheckTimeouts(now);

  zmq::pollitem_t items[] = {
      {dealer_.handle(), 0, ZMQ_POLLIN, 0},
      {sub_.handle(), 0, ZMQ_POLLIN, 0},
      {monitor_.handle(), 0, ZMQ_POLLIN, 0},
  };
  zmq::poll(items, 3, settings_.send_interval);
  if (items[2].revents & ZMQ_POLLIN) HandleMonitor(Clock::now());
  if (items[0].revents & ZMQ_POLLIN) {
    zmq::message_t msg;
    while (dealer_.recv(msg, zmq::recv_flags::dontwait)) HandleFrame(msg, Clock::now());
  }
  if (items[1].revents & ZMQ_POLLIN) HandlePublications();
}

bool Client::Impl::Drained() {
  return queue.Empty() && controls_ready_.empty() && requests_.size() == event_requests_;
}

void Client::Impl::HandleMonitor(Clock::time_point now) {
  const std::string& endpoint = settings_.ingress_endpoint;
  zmq::message_t event, address;
  while (monitor_.recv(event, zmq::recv_flags::dontwait)) {
    // Two frames: the event (id, value), then the endpoint, which we know.
    if (event.more() && !monitor_.recv(address, zmq::recv_flags::dontwait)) continue;
    if (event.size() < 2) continue;
    std::uint16_t id;
    std::memcpy(&id, event.data(), sizeof id);
    switch (id) {
      case ZMQ_EVENT_CONNECTED:
        tcp_up_ = true;
        refused_ = false;
        last_reached_ = now;
        break;
      case ZMQ_EVENT_CONNECT_RETRIED:
        refused_ = true;
        break;
      case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        transport_up_ = true;
        hello_due_at_ = now;
        launch_backoff_ = settings_.daemon.probe;
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        tcp_up_ = false;
        last_reached_ = now;
        SetState(ConnectionState::WrongPeer, relay_ ? RelayRefused(endpoint)
                 : "another program holds " + endpoint + " (or the daemon there hangs): "
                 "the ZeroMQ handshake failed. Stop it, or point Settings::ingress_endpoint at the daemon");
        if (relay_) RelayRefusedUs(now);
        break;
      case ZMQ_EVENT_DISCONNECTED: {
        const bool welcomed = ready_;
        const bool reached = tcp_up_;
        const bool transport_was_up = transport_up_;
        if (reached) last_reached_ = now;
        tcp_up_ = transport_up_ = ready_ = false;
        hello_due_at_.reset();
        hello_rid_.reset();
        RequeueAll();
        queue.Update([](Stats& s) { s.connected = false; });
        if (welcomed) {
          down_since_ = now;
          SetState(ConnectionState::Connecting, std::string("the connection to the ") + Peer() + " at " + endpoint +
                   " dropped; reconnecting");
        } else if (reached && relay_ && !transport_was_up) {
          SetState(ConnectionState::WrongPeer, RelayRefused(endpoint));
          RelayRefusedUs(now);
        } else if (reached) {
          SetState(ConnectionState::WrongPeer, "another program holds " + endpoint + ": it closed the connection "
                   "without saying welcome. Stop it, or point Settings::ingress_endpoint at the daemon");
        }
        break;
      }
      default:
        break;
    }
  }
}

void Client::Impl::RelayRefusedUs(Clock::time_point now) {
  if (redial_at_) return;
  try {
    dealer_.disconnect(settings_.ingress_endpoint);
    if (!settings_.configs_endpoint.empty()) sub_.disconnect(settings_.configs_endpoint);
  } catch (const zmq::error_t&) {
    // Already hung up (ENOENT): dialling again later is all that is left to do.
  }
  tcp_up_ = false;
  redial_backoff_ = redial_backoff_.count() == 0 ? kRelayRedialFirst : std::min(redial_backoff_ * 2, kRelayRedialMax);
  redial_at_ = now + redial_backoff_;
}

void Client::Impl::SetState(ConnectionState state, std::string detail) {
  if (state == state_) return;  // told once: an outage is one message, however many retries it takes
  const ConnectionState was = state_;
  state_ = state;
  const bool problem = state == ConnectionState::Unreachable || state == ConnectionState::WrongPeer ||
                       state == ConnectionState::LaunchFailed;
  queue.Update([&](Stats& s) {
    s.connection = state;
    if (problem) s.last_error = detail;
    if (state == ConnectionState::Connected) s.last_error.clear();
  });
  if (problem) {
    console.Log(LogLevel::Warning, detail);
  } else if (state == ConnectionState::Connected &&
             (was == ConnectionState::Unreachable || was == ConnectionState::WrongPeer ||
              was == ConnectionState::LaunchFailed)) {
    console.Log(LogLevel::Info, detail);
  }
  callbacks.Post([this, state, detail = std::move(detail)] {
    if (std::shared_ptr<ConnectionCallback> handler = connection_handler.Get()) (*handler)(state, detail);
  });
}

void Client::Impl::CheckUnreachable(Clock::time_point now) {
  if (ready_ || tcp_up_ || !refused_ || state_ == ConnectionState::Unreachable) return;
  // A relay that was reached lately (one that refuses our handshake, say) is still there: libzmq's next attempt
  // may be a whole reconnect delay away, longer than kUnreachableAfter.
  if (relay_ && now - last_reached_ < std::chrono::milliseconds(kRelayReconnectMaxMs) + kUnreachableAfter) return;
  const bool launching = !settings_.daemon.command.empty();
  // libzmq also retries after a failed handshake: only refused connections, for a while, mean nobody listens.
  const Clock::time_point since = std::max(down_since_, last_reached_);
  if (now - since < (launching ? settings_.daemon.probe + kLaunchGrace : kUnreachableAfter)) return;
  std::string detail = std::string("no ") + Peer() + " answers at " + settings_.ingress_endpoint;
  detail += relay_ ? std::string(": offline, or the relay is down")
          : launching ? ", not even the one this game started (see " +
                            (settings_.daemon.log_path.empty() ? std::string("the game's output")
                                                               : settings_.daemon.log_path) + ")"
                      : ": start it with `engine-bridge run`, or set Settings::daemon.command to launch it with the game";
  detail += ". Events wait in memory (up to " + std::to_string(settings_.queue_capacity) + ") until it answers";
  SetState(ConnectionState::Unreachable, std::move(detail));
}

void Client::Impl::MaybeLaunchDaemon(Clock::time_point now) {
  if (settings_.daemon.command.empty()) return;
  const bool alive = daemon_.Running();
  queue.Update([&](Stats& s) { s.daemon_pid = daemon_.pid(); });
  if (transport_up_ || alive || now < next_launch_) return;
  Status started = daemon_.Start(settings_.daemon.command, settings_.daemon.log_path, daemon_by_pipe_);
  if (started) {
    console.Log(LogLevel::Info, "no daemon answered at " + settings_.ingress_endpoint + "; started `" +
                                    settings_.daemon.command.front() + "` (pid " + std::to_string(daemon_.pid()) + ")");
  }
  queue.Update([&](Stats& s) { s.daemon_pid = daemon_.pid(); });
  if (!started) SetState(ConnectionState::LaunchFailed, "daemon launch: " + started.message());
  // If it dies before answering (a port taken, a broken install), try again later and less often.
  next_launch_ = now + launch_backoff_;
  launch_backoff_ = std::min(launch_backoff_ * 2, std::chrono::duration_cast<std::chrono::milliseconds>(kMaxLaunchBackoff));
}

}  // namespace engine_bridge
