// engine-bridge C++ client: the one include a game needs.
//
// A Client talks to the engine-bridge daemon (protocol v1, see protocol.md) from a background thread.
// Every call a game makes per frame returns in microseconds: Track* only validates and enqueues, Poll()
// runs the callbacks that the background thread has prepared. Nothing here throws, so an engine built with
// -fno-exceptions can use it: every member is noexcept but Poll, which lets through only what the game's own
// callbacks throw. Bad arguments come back as a Status with ErrorCode::InvalidArgument and a message naming
// the argument, an allocation failure inside the library as ErrorCode::Internal.
//
// The public header uses only the standard library, so ZeroMQ and msgpack macros never leak into an
// engine's translation units (Unreal's among them).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace engine_bridge {

/// Sent in `hello` as `binding` / `binding_version`, so the daemon knows which client it talks to.
inline constexpr const char* kBindingName = "engine-bridge-cpp";
inline constexpr const char* kBindingVersion = "2.0.0";  // the CMake package version too
/// The highest wire protocol version this binding speaks.
inline constexpr int kProtocolVersion = 1;

/// Why a call did not do what was asked.
enum class ErrorCode {
  Ok = 0,
  InvalidArgument,   ///< an argument breaks protocol.md's rules; nothing was queued
  NotConnected,      ///< Connect() has not been called (or Shutdown() was)
  AlreadyConnected,  ///< Connect() twice without Shutdown() in between
  QueueFull,         ///< too many control requests (sessions, flushes, purchases) wait for the daemon
  Internal,          ///< ZeroMQ could not set up (out of file descriptors, say), or memory ran out
};

/// The outcome of a call: cheap when Ok (no allocation), a readable message otherwise.
class Status {
 public:
  Status() noexcept = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const noexcept { return code_ == ErrorCode::Ok; }
  explicit operator bool() const noexcept { return ok(); }
  ErrorCode code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }

 private:
  ErrorCode code_ = ErrorCode::Ok;
  std::string message_;
};

/// A string argument that may be null. Engine code often passes `const char*` (an FString converted to
/// UTF-8, a C string from a script VM); a null must become an InvalidArgument, not a crash in strlen.
class Text {
 public:
  Text() noexcept = default;
  Text(std::nullptr_t) noexcept : null_(true) {}
  Text(const char* s) noexcept : view_(s ? std::string_view(s) : std::string_view()), null_(s == nullptr) {}
  Text(std::string_view s) noexcept : view_(s) {}
  Text(const std::string& s) noexcept : view_(s) {}

  std::string_view view() const noexcept { return view_; }
  bool is_null() const noexcept { return null_; }
  bool empty() const noexcept { return view_.empty(); }

 private:
  std::string_view view_;
  bool null_ = false;
};

/// A msgpack value: what event fields hold and what configs carry.
class Value {
 public:
  using Array = std::vector<Value>;
  /// Keeps insertion order; keys must be unique (checked when an event is tracked).
  using Map = std::vector<std::pair<std::string, Value>>;
  /// msgpack bin: raw bytes, which a JSON-based provider receives as base64 text.
  struct Bytes {
    std::string data;
    friend bool operator==(const Bytes& a, const Bytes& b) { return a.data == b.data; }
  };
  enum class Type { Nil, Bool, Int, UInt, Double, String, Array, Map, Bytes };

  Value() noexcept = default;
  Value(std::nullptr_t) noexcept {}
  Value(bool b) noexcept : v_(b) {}
  /// Any integer type; unsigned values above INT64_MAX keep their exact value as Type::UInt.
  template <typename T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  Value(T i) noexcept {
    if constexpr (std::is_unsigned_v<T>) {
      if (static_cast<std::uint64_t>(i) > static_cast<std::uint64_t>(INT64_MAX)) {
        v_ = static_cast<std::uint64_t>(i);
        return;
      }
    }
    v_ = static_cast<std::int64_t>(i);
  }
  Value(double d) noexcept : v_(d) {}
  Value(float f) noexcept : v_(static_cast<double>(f)) {}
  /// A null pointer becomes Nil.
  Value(const char* s) { if (s) v_ = std::string(s); }
  Value(std::string s) noexcept : v_(std::move(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  Value(Array a) noexcept : v_(std::move(a)) {}
  Value(Map m) noexcept : v_(std::move(m)) {}
  Value(Bytes b) noexcept : v_(std::move(b)) {}

  Type type() const noexcept { return static_cast<Type>(v_.index()); }
  bool is_nil() const noexcept { return type() == Type::Nil; }

  /// Each accessor answers only for the matching type (AsDouble also takes integers); otherwise empty.
  std::optional<bool> AsBool() const noexcept;
  std::optional<std::int64_t> AsInt() const noexcept;
  /// A UInt, or an Int that is not negative.
  std::optional<std::uint64_t> AsUInt() const noexcept;
  std::optional<double> AsDouble() const noexcept;
  const std::string* AsString() const noexcept { return std::get_if<std::string>(&v_); }
  const Array* AsArray() const noexcept { return std::get_if<Array>(&v_); }
  const Map* AsMap() const noexcept { return std::get_if<Map>(&v_); }
  const Bytes* AsBytes() const noexcept { return std::get_if<Bytes>(&v_); }
  /// The entry of a Map with this key, or null.
  const Value* Find(std::string_view key) const noexcept;

  friend bool operator==(const Value& a, const Value& b) { return a.v_ == b.v_; }
  friend bool operator!=(const Value& a, const Value& b) { return !(a == b); }

 private:
  // The alternative order matches Type.
  std::variant<std::monostate, bool, std::int64_t, std::uint64_t, double, std::string, Array, Map, Bytes> v_;
};

/// An event's fields: `{{"step", 3}, {"skipped", true}}`.
using Fields = Value::Map;

/// The event categories of protocol v1, for the generic Track(). Impression (ad revenue) came after Custom, so
/// that the others keep their values.
enum class EventCategory { Design, Business, Progression, Resource, Error, Ads, Custom, Impression };
/// The first part of a progression event_id.
enum class ProgressionStatus { Start, Fail, Complete };
/// Whether a resource event gains (Source) or spends (Sink) a virtual currency.
enum class ResourceFlow { Source, Sink };
/// Sent as the lower-case name.
enum class ErrorSeverity { Debug, Info, Warning, Error, Critical };
/// Sent in snake_case: "failed_show", "reward_received", ...
enum class AdAction { Clicked, Show, FailedShow, RewardReceived, Request, Loaded };
/// Sent in snake_case: "rewarded_video", "offer_wall", "app_open", ...
enum class AdType { Video, RewardedVideo, Playable, Interstitial, OfferWall, Banner, AppOpen };
/// Why an ad failed to show (AdAction::FailedShow), sent as "ad_fail_show_reason" in snake_case: "no_fill",
/// "unable_to_precache", ..., the values GameAnalytics takes.
enum class AdFailShowReason { Unknown, Offline, NoFill, InternalError, InvalidRequest, UnableToPrecache };
/// Sent as "apple" or "googleplay".
enum class PurchaseStore { Apple, GooglePlay };

/// Who is playing what: the `hello` the daemon gets after every (re)connect.
struct GameInfo {
  std::string game_build;      ///< required, 1–32 chars, e.g. "1.4.2"
  std::string device_id;       ///< required, 1–128 chars, stable for this install
  std::string user_id;         ///< optional, 1–128 chars; the daemon defaults it to device_id
  std::string engine = "custom";  ///< "unreal", "custom", ...
  std::string engine_version;  ///< optional, ≤ 64 chars
  std::string platform;        ///< optional, ≤ 32 chars, lower case: "windows", "linux", ...
  std::string os_version;      ///< optional, ≤ 64 chars, e.g. "windows 10"
  std::string device;          ///< optional, ≤ 64 chars
  std::string manufacturer;    ///< optional, ≤ 64 chars
};

/// Starting the daemon as a child process when none answers, and stopping it with the game.
struct DaemonLaunch {
  /// The bundled daemon shipped with the game (`engine-bridge bundle`), e.g. "engine-bridge/engine-bridge"
  /// (".exe" on Windows): a relative path is found next to the game's executable, wherever the game was started
  /// from. It is run as `<executable> run --ingress <endpoint> --publish <endpoint> --parent-pipe [--game
  /// <Settings::game>] <arguments...>`: the daemon stops when the game ends, however it ends (the game holds a
  /// pipe to its standard input). Empty: `command` decides.
  std::string executable;
  /// More arguments after those, e.g. {"--config", "/path/to/bridge.toml"}.
  std::vector<std::string> arguments;
  /// Instead of `executable`: the daemon's whole argv, e.g. {"engine-bridge", "run"}, run as given (its
  /// standard input is the game's pipe all the same: add "--parent-pipe" to have it stop when the game ends,
  /// however it ends; on Linux the kernel also sends it SIGTERM when the game dies). Both empty: never launch one.
  std::vector<std::string> command;
  /// How long to wait for a daemon to answer before starting ours.
  std::chrono::milliseconds probe{1000};
  /// File that receives the child's stdout and stderr (appended); empty: inherit the game's.
  std::string log_path;
  /// After SIGTERM at shutdown, how long the child may take before SIGKILL.
  std::chrono::milliseconds stop_timeout{3000};
};

/// Sending straight to the studio's relay over CURVE (protocol.md section 11), for platforms that cannot run a
/// local daemon (mobile, consoles). Set `endpoint` to use it: the client then talks to the relay alone, never
/// to a local daemon (Settings::ingress_endpoint, configs_endpoint and daemon are not used; a launch setting
/// beside a relay is refused), and keeps its unacknowledged events in memory only (see README, Relay).
struct RelayConnection {
  /// The relay's CURVE ingress (its `[relay] bind`), e.g. "tcp://relay.example.com:5557". Empty: no relay.
  std::string endpoint;
  /// The relay's CURVE configs socket (its `[relay] publish`); empty: no configs or late verdicts.
  std::string configs_endpoint;
  /// The relay's public key, 40 Z85 characters (`engine-bridge keys` on the relay).
  std::string public_key;
  /// Where this install keeps its own CURVE key pair, e.g. "<save data>/engine-bridge.key". Made on the first
  /// Connect() (zmq_curve_keypair; readable by its owner only) and read back at every later one: keep it with
  /// the save data, since the relay binds a device_id to the first key that says hello as it, for good.
  std::string key_file;
};

struct Settings {
  /// The game's short id (1–32 of a–z 0–9 _ -), sent in `hello`: a daemon serving another game refuses this
  /// client (ConnectionState::WrongPeer), and the endpoints left empty are the game's own (protocol.md 1:
  /// POSIX ipc:// sockets in the user's runtime directory, Windows a loopback port pair from the id).
  /// Empty: no game id, and the classic endpoints tcp://127.0.0.1:5555 and :5556.
  std::string game;
  /// Empty: the game's default (see `game`).
  std::string ingress_endpoint;
  std::string configs_endpoint;
  /// Events kept until acknowledged (waiting or in flight), so memory stays bounded while the daemon is
  /// away. When full, the oldest event never sent is dropped (Stats::dropped); one already sent is kept,
  /// since the daemon may have stored it. Size it for your rate and the longest outage to ride out:
  /// rate × (outage + 1 s of reconnect), e.g. 1,000 events/s through a 6 s outage needs 7,000.
  std::size_t queue_capacity = 10000;
  /// Requests sent and not yet answered; more overlap the daemon's commits with the network.
  std::size_t max_in_flight = 4;
  /// How often the background thread looks for new events when nothing else wakes it.
  std::chrono::milliseconds send_interval{5};
  /// A request unanswered this long is sent again (the daemon deduplicates events by id).
  std::chrono::milliseconds request_timeout{10000};
  /// Shutdown() keeps sending this long for events still queued.
  std::chrono::milliseconds shutdown_grace{300};
  DaemonLaunch daemon;
  /// Straight to a relay instead of a local daemon (its endpoint set).
  RelayConnection relay;
};

/// Options of StartSession()/EndSession() for a dedicated server, which runs the sessions of many players.
struct SessionOptions {
  /// 1–128 chars; empty: the `hello` user.
  std::string user_id;
  /// The player's IP address (≤ 45 chars), which providers receive as X-Forwarded-For; empty: none.
  std::string user_ip;
  /// ms since the Unix epoch; empty: the daemon's clock.
  std::optional<std::int64_t> timestamp_ms;
};

/// A player's answer for one purpose of the game's consent dialog (protocol.md section 4.10).
enum class ConsentState { Unchanged, Granted, Denied };

/// The argument of SetConsent(): each purpose's new state (Unchanged: left as it is), and whose.
struct Consent {
  /// Anything of the player leaving the machine (events, sessions, logins, remote configs).
  ConsentState analytics = ConsentState::Unchanged;
  /// The player's IP address and advertising ids.
  ConsentState ip_ads = ConsentState::Unchanged;
  /// 1–128 chars; empty: the `hello` user. A dedicated server names its player.
  std::string user_id;
};

/// Options of the generic Track(): only needed by dedicated servers and replayed events.
struct EventOptions {
  /// 1–64 chars of A–Z a–z 0–9 - _ . : ; empty: a fresh UUID v4. A fixed id makes a retry idempotent.
  std::string id;
  /// 1–128 chars; empty: the `hello` user. A dedicated server names the player here.
  std::string user_id;
  /// ms since the Unix epoch; empty: now.
  std::optional<std::int64_t> timestamp_ms;
};

/// A purchase receipt to verify (protocol.md 4.9).
struct Purchase {
  /// 1–64 chars of A–Z a–z 0–9 - _ . : , deduplicated like event ids; empty: a fresh UUID v4.
  std::string id;
  PurchaseStore store = PurchaseStore::Apple;
  std::string receipt;    ///< required, 1–65536 chars
  std::string signature;  ///< required for Google Play, not sent for Apple
  std::optional<double> price_usd;
  std::string status;   ///< empty (the daemon's default, "completed"), "processing" or "completed"
  std::string comment;  ///< at most 1024 chars
  Fields metadata;
};

/// What became of a purchase (protocol.md 4.9): the verdict of the store's server, or the daemon's refusal
/// of the request. Given to VerifyPurchase's callback and to the game-wide purchase handler.
struct PurchaseResult {
  std::string id;          ///< the purchase's id
  /// false: the daemon refused the request (`error_code`, `message`, e.g. "not_configured" or
  /// "invalid_value"); nothing was stored and no verdict will follow
  bool ok = false;
  std::string error_code;  ///< protocol.md section 6, when !ok
  std::string message;
  bool is_valid = false;      ///< the store's server accepted the receipt
  bool is_duplicate = false;  ///< the receipt had been verified before, for another purchase: a replay
  std::string reason;         ///< e.g. "verified by staq", or why a forged receipt was refused
  std::string store;          ///< "apple" or "googleplay"
  /// When the daemon recorded the verdict, ms since the Unix epoch. Verdicts that came on the configs
  /// socket carry it; those the reply carried do not.
  std::optional<std::int64_t> verified_at;

  /// Whether to grant what was bought: a verdict, a receipt the store accepted, and not a replay.
  bool Grantable() const noexcept { return ok && is_valid && !is_duplicate; }
};

/// The daemon's answer to a session or flush request.
struct Reply {
  bool ok = false;         ///< false: `error_code` and `message` say why
  std::string type;        ///< "session", "flushed", or "error"
  std::string error_code;  ///< protocol.md section 6, e.g. "not_configured", "no_session"
  std::string message;
  Value body;              ///< the whole reply map
};

/// An event the daemon stored and acknowledged but that a provider's rules refuse (the ack's `invalid`):
/// that provider will not get it (it is dead-lettered there: `engine-bridge dead-letters` lists it and can
/// re-queue it after a fix); the other providers still do.
struct ProviderRefusal {
  std::string event_id;
  std::string provider;  ///< the provider's name in the daemon's configuration, e.g. "gameanalytics"
  std::string rule;      ///< the rule broken, e.g. "event_id: 'a:b:c:d:e:f' must have 1 or 2 or 3 or 4 or 5 parts ..."
};

/// What the client knows of the daemon at its ingress endpoint.
enum class ConnectionState {
  Connecting,   ///< not yet answered: just connected, or the connection dropped
  Connected,    ///< the daemon said `welcome`
  Unreachable,  ///< nothing accepts connections at the endpoint: no daemon is running there
  WrongPeer,    ///< the endpoint belongs to another program, which does not speak engine-bridge, or to the
                ///< daemon of another game (`wrong_game`): this client does not use it
  LaunchFailed, ///< the daemon this game launches could not be started (a missing or non-executable file);
                ///< Stats::last_error says why, and the launch is tried again later
};

enum class LogLevel { Info, Warning, Error };

using ReplyCallback = std::function<void(const Reply&)>;
using ProviderRefusalCallback = std::function<void(const ProviderRefusal&)>;
/// `detail` says what happened, for people (the console message without its prefix).
using ConnectionCallback = std::function<void(ConnectionState state, std::string_view detail)>;
/// The binding's console messages; `message` starts with "engine-bridge: ".
using LogCallback = std::function<void(LogLevel level, std::string_view message)>;
using PurchaseCallback = std::function<void(const PurchaseResult&)>;
/// `value` is Nil when the key was removed from every config topic.
using ConfigCallback = std::function<void(std::string_view key, const Value& value)>;
using SubscriptionId = std::uint64_t;

/// Counters for a HUD or a log line; a snapshot taken under a short lock.
struct Stats {
  bool connected = false;         ///< a `welcome` came on the current connection
  ConnectionState connection = ConnectionState::Connecting;
  std::uint64_t tracked = 0;      ///< events accepted by Track calls
  std::uint64_t queued = 0;       ///< events not yet acknowledged (waiting or in flight)
  std::uint64_t in_flight = 0;    ///< events sent and not yet acknowledged
  std::uint64_t acknowledged = 0; ///< events an `ack` covered: stored, duplicate or rejected
  std::uint64_t stored = 0;
  std::uint64_t duplicates = 0;   ///< the daemon had them already (a resend after a lost ack)
  std::uint64_t rejected = 0;     ///< refused by the daemon's checks; `last_rejection` says why
  std::uint64_t provider_refusals = 0;  ///< stored, but refused by a provider's rules (ProviderRefusal)
  std::uint64_t dropped = 0;      ///< never sent: dropped because the queue was full
  std::uint64_t abandoned = 0;    ///< sent, then dropped from a full queue before their ack: perhaps stored
  std::uint64_t resent = 0;       ///< events sent again after a reconnect, an error or a timeout
  std::uint64_t reconnects = 0;   ///< welcomes after the first
  std::int64_t daemon_pid = 0;    ///< the daemon this client launched, 0 if none
  std::string last_rejection;
  /// Why the daemon cannot be used (unreachable, another program on the port, a failed launch); empty once
  /// it said `welcome`.
  std::string last_error;
};

/// One connection to the daemon. Thread-safe except Connect/Shutdown, which must not race other calls.
class Client {
 public:
  Client() noexcept;
  /// Shutdown() with the configured grace.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// Checks the arguments, opens the sockets and starts the background thread; returns at once, whether
  /// or not a daemon is listening yet (events queue until one answers).
  Status Connect(const GameInfo& game, const Settings& settings = Settings()) noexcept;
  /// Keeps sending queued events for at most `grace` (default Settings::shutdown_grace), then stops the
  /// thread, closes the sockets and stops a daemon this client launched. Unacknowledged events stay
  /// queued for the next Connect().
  void Shutdown(std::optional<std::chrono::milliseconds> grace = std::nullopt) noexcept;

  // --- events: validate, encode, enqueue, return -------------------------------------------------------

  /// `event_id`: 1–5 parts joined by ':', e.g. "ui:click:play".
  Status TrackDesign(Text event_id, std::optional<double> value = std::nullopt, const Fields& extra = {}) noexcept;
  /// `currency` ISO 4217 ("USD"), `amount_cents` in its minor unit; the event_id becomes itemType:itemId.
  Status TrackBusiness(Text currency, std::int64_t amount_cents, Text item_type, Text item_id,
                       Text cart_type = {}, const Fields& extra = {}) noexcept;
  /// Up to three progression levels: world, level, phase; later ones may be empty.
  Status TrackProgression(ProgressionStatus status, Text progression01, Text progression02 = {},
                          Text progression03 = {}, std::optional<std::int64_t> score = std::nullopt,
                          std::optional<std::int64_t> attempt_num = std::nullopt, const Fields& extra = {}) noexcept;
  /// `amount` is positive for both flows; the flow gives the direction.
  Status TrackResource(ResourceFlow flow, Text currency, double amount, Text item_type, Text item_id,
                       const Fields& extra = {}) noexcept;
  Status TrackError(ErrorSeverity severity, Text message, const Fields& extra = {}) noexcept;
  /// What happened to which ad, the ad network's SDK and the placement (1–64 chars each). `duration_ms`
  /// (>= 0) is sent as "ad_duration", which GameAnalytics takes on Video and RewardedVideo ads;
  /// `fail_show_reason` as "ad_fail_show_reason", which it takes with FailedShow. Deprecated: an
  /// "ad_fb_error" in `extra` (the reason's first name, one of its wire names such as "no_fill") is taken as
  /// `fail_show_reason` and sent as "ad_fail_show_reason".
  Status TrackAd(AdAction action, AdType ad_type, Text sdk_name, Text placement,
                 std::optional<std::int64_t> duration_ms = std::nullopt,
                 std::optional<AdFailShowReason> fail_show_reason = std::nullopt, const Fields& extra = {}) noexcept;
  /// TrackAd as 2.0 had it, `extra` in sixth place: kept so that those calls still compile.
  Status TrackAd(AdAction action, AdType ad_type, Text sdk_name, Text placement,
                 std::optional<std::int64_t> duration_ms, const Fields& extra) noexcept;
  /// Ad revenue: an ad network's impression record as the network's SDK gave it (`impression_data`: revenue,
  /// currency, precision, ...), sent as an `impression` event with the network's name ("max", "admob",
  /// "ironsource", ...) and its SDK's version, 1–64 chars each.
  Status TrackImpression(Text ad_network_name, Text ad_network_version, const Value::Map& impression_data,
                         const Fields& extra = {}) noexcept;
  /// `name` 1–64 chars; `fields` anything within protocol.md's limits.
  Status TrackCustom(Text name, const Fields& fields = {}) noexcept;
  /// Any category with its fields as protocol.md section 5 lists them (the required ones are checked):
  /// for what the typed helpers do not cover, and for dedicated servers (EventOptions).
  Status Track(EventCategory category, const Fields& fields, const EventOptions& options = {}) noexcept;

  // --- requests with a reply: sent in order after the events tracked before them ---------------------

  Status StartSession(ReplyCallback on_reply = nullptr, const SessionOptions& options = {}) noexcept;
  Status EndSession(ReplyCallback on_reply = nullptr, const SessionOptions& options = {}) noexcept;
  /// Asks the daemon to hand queued events to the providers now (e.g. before quitting).
  Status Flush(ReplyCallback on_reply = nullptr) noexcept;
  /// The player's consent (protocol.md 4.10), queued after the events tracked before it; the reply says the
  /// new state of each purpose. At least one purpose must be Granted or Denied.
  Status SetConsent(const Consent& consent, ReplyCallback on_reply = nullptr) noexcept;
  /// Erase every trace of the player at the daemon, and have each provider asked to erase theirs (4.11);
  /// `user_id` empty: the `hello` user.
  Status Forget(const std::string& user_id = {}, ReplyCallback on_reply = nullptr) noexcept;
  /// Sends a receipt for verification. `on_result` runs exactly once, in Poll(): with the verdict as soon
  /// as the daemon has it (in the reply, or, when the store's server did not answer within the daemon's
  /// 5 s, later from the configs socket), or with the daemon's error (`not_configured` without staq).
  /// Until the verdict comes, the purchase waits across reconnects and Shutdown()/Connect(); a client
  /// destroyed before it never calls `on_result`, and the next run's purchase handler gets the verdict.
  /// `id` (may be null) receives the purchase's id, generated when Purchase::id is empty: keep it with
  /// the unfinished purchase, so that the game recognises the verdict however it arrives.
  Status VerifyPurchase(const Purchase& purchase, PurchaseCallback on_result, std::string* id = nullptr) noexcept;
  /// The game-wide handler, run in Poll(), for verdicts on purchases this client did not send: those
  /// made by an earlier run (the daemon repeats a device's last 50 verdicts to every new client) or by
  /// another client of the same device. Each purchase id reaches the game once per Client object: through
  /// a VerifyPurchase callback or this handler, never both, never twice (a later VerifyPurchase of the same
  /// id still gets its own callback). Verdicts that arrive while no handler is set wait for one. Callable
  /// before Connect(); nullptr removes the handler.
  void SetPurchaseHandler(PurchaseCallback handler) noexcept;

  // --- configs -------------------------------------------------------------------------------------------

  /// `callback` runs in Poll() whenever the key's value changes, and once with the current value if it
  /// is already known (a late subscribe). Callable before Connect().
  Status SubscribeConfig(Text key, ConfigCallback callback, SubscriptionId* id = nullptr) noexcept;
  void Unsubscribe(SubscriptionId id) noexcept;
  /// Typed getters: the key's value as of the last Poll(), or `fallback` when absent or of another type.
  std::string GetString(Text key, std::string fallback = {}) const noexcept;
  std::int64_t GetInt(Text key, std::int64_t fallback = 0) const noexcept;
  double GetDouble(Text key, double fallback = 0.0) const noexcept;
  bool GetBool(Text key, bool fallback = false) const noexcept;
  std::optional<Value> GetConfig(Text key) const noexcept;

  // --- what the game hears of the daemon: all run in Poll(), all callable before Connect() ---------------

  /// Every event a provider refuses (the ack's `invalid`), one call each. Each is also counted in
  /// Stats::provider_refusals and, rate-limited, warned about in the log. nullptr: no callback.
  void SetProviderRefusalHandler(ProviderRefusalCallback handler) noexcept;
  /// Every change of ConnectionState. The log also says, once per outage, when no daemon answers or when
  /// another program holds the endpoint, and when the daemon is back.
  void SetConnectionHandler(ConnectionCallback handler) noexcept;
  /// Where the binding's console messages go (UE_LOG, say); nullptr: standard error, the default.
  void SetLogHandler(LogCallback handler) noexcept;

  /// Runs the callbacks that are ready (config changes, replies, refusals, log lines) on the calling
  /// thread; call it once a frame. Returns how many ran. An exception your own callback throws leaves
  /// Poll (the callbacks after it run at the next Poll); the binding's own code never throws.
  std::size_t Poll();

  Stats GetStats() const noexcept;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace engine_bridge
