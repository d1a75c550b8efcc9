// Protocol v1 (protocol.md): names, limits, the request builders and the reply readers, each spelled once.
// Internal; the conformance test (tests/conformance_test.cpp) checks these against the shared vectors.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine_bridge/engine_bridge.hpp"

namespace engine_bridge::detail {

/// protocol.md section 8. These are the defaults until a `welcome` brings the daemon's own (its `limits`).
struct Limits {
  std::size_t max_message_bytes = 256 * 1024;
  std::size_t max_batch_events = 1000;
  std::size_t max_event_id_chars = 64;
  std::size_t max_fields = 64;
  std::size_t max_string_chars = 8192;
  std::size_t max_depth = 4;
};

/// The limits in force: read by the game's threads at each Track, replaced by the I/O thread at each welcome.
class SharedLimits {
 public:
  SharedLimits() noexcept { Set(Limits()); }
  Limits Get() const noexcept;
  void Set(const Limits& limits) noexcept;

 private:
  std::atomic<std::size_t> v_[6];
};

// Rules a welcome does not carry (protocol.md sections 4 and 5).
inline constexpr std::size_t kMaxKeyChars = 64;
inline constexpr std::size_t kMaxPartChars = 64;  // one part of a `:`-joined event_id
inline constexpr std::size_t kMaxNameChars = 64;  // a custom event's name
inline constexpr std::size_t kMaxUserIdChars = 128;
inline constexpr std::size_t kMaxUserIpChars = 45;
inline constexpr std::size_t kMaxReceiptChars = 65536;
inline constexpr std::size_t kMaxCommentChars = 1024;
// Room for a batch's own head in front of its events, so one event alone always fits in a message.
inline constexpr std::size_t kBatchHeadRoom = 64;

inline constexpr std::string_view kConfigPrefix = "config/";
inline constexpr std::string_view kGameRampPrefix = "config/gameramp/";
inline constexpr std::string_view kLocalTopic = "config/local";
inline constexpr std::string_view kGameAnalyticsTopic = "config/gameanalytics";
inline constexpr std::string_view kPurchasePrefix = "purchase/";

// Wire names of the public enums, in declaration order.
inline constexpr std::string_view kCategories[] = {"design", "business", "progression", "resource", "error", "ads",
                                                   "custom", "impression"};
inline constexpr std::string_view kProgressionStatuses[] = {"Start", "Fail", "Complete"};
inline constexpr std::string_view kResourceFlows[] = {"Source", "Sink"};
inline constexpr std::string_view kSeverities[] = {"debug", "info", "warning", "error", "critical"};
inline constexpr std::string_view kAdActions[] = {"clicked", "show", "failed_show", "reward_received", "request",
                                                  "loaded"};
inline constexpr std::string_view kAdTypes[] = {"video", "rewarded_video", "playable", "interstitial", "offer_wall",
                                                "banner", "app_open"};
inline constexpr std::string_view kAdFailShowReasons[] = {"unknown",        "offline",         "no_fill",
                                                          "internal_error", "invalid_request", "unable_to_precache"};
/// Protocol v1's first name for "ad_fail_show_reason", still taken in a TrackAd's `extra`.
inline constexpr std::string_view kAdFbError = "ad_fb_error";
inline constexpr std::string_view kStores[] = {"apple", "googleplay"};

/// An enum's wire name, or nothing for a value outside the enum (a cast from a bad integer, say from C).
template <typename Enum, typename Names>
std::optional<std::string_view> WireName(Enum e, const Names& names) noexcept {
  const auto i = static_cast<std::size_t>(e);
  if (i >= std::size(names)) return std::nullopt;
  return names[i];
}

/// A lower-case UUID v4 from a per-thread generator (no lock, no system call after the first), written into
/// `out` (no allocation: this runs at every Track call).
void NewUuid(char (&out)[36]);
std::string NewUuid();
std::int64_t NowMs() noexcept;

// --- requests ---------------------------------------------------------------------------------------------

/// The key/value pairs of a request after its `type` and `rid`, already msgpack.
struct Body {
  std::string bytes;
  std::uint32_t pairs = 0;
};

/// A `hello` field a GameInfo fills, with protocol.md 4.1's rule for it.
struct InfoField {
  const char* name;
  const std::string* value;
  bool required;
  std::size_t max_chars;
};
std::array<InfoField, 9> InfoFields(const GameInfo& game) noexcept;

/// The whole frame: {type, rid, ...body}.
std::string RequestFrame(std::string_view type, std::uint32_t rid, const Body& body);
/// The head of an `events` request, {type, rid, events: [ — the `count` encoded events follow it.
std::string BatchHead(std::uint32_t rid, std::uint32_t count);
/// `hello` (protocol.md 4.1) for a game; the GameInfo must have passed CheckGameInfo.
/// The hello's fields; `game_id` (Settings::game) is sent when not empty.
Body HelloBody(const GameInfo& game, const std::string& game_id = std::string());
/// `session_start` / `session_end` (4.4); checks the options.
Status SessionBody(std::string_view api, const SessionOptions& options, Body& out);
/// `consent` (4.10): at least one purpose given, the user id within its limits.
Status ConsentBody(std::string_view api, const Consent& consent, Body& out);
/// `forget` (4.11).
Status ForgetBody(std::string_view api, const std::string& user_id, Body& out);
/// `purchase` (4.9); checks the purchase, and generates its id when it has none (`id` receives it).
Status PurchaseBody(std::string_view api, const Purchase& purchase, const Limits& limits, std::string& id, Body& out);

/// A field a typed helper fills in; a monostate value means "absent, leave it out".
struct FixedField {
  std::string_view key;
  /// A map or any other Value (an impression's impression_data) is checked as `extra`'s values are.
  std::variant<std::monostate, std::string_view, std::int64_t, double, const Value*> value;
};
/// One event (protocol.md section 5), checked and encoded: `fixed` from a typed helper, `extra` from the
/// game; `options` (may be null) the id, user and time, else a fresh UUID and now.
Status EncodeEvent(std::string_view api, std::string_view category, std::initializer_list<FixedField> fixed,
                   const Fields& extra, const EventOptions* options, const Limits& limits, std::string& out);

// --- replies and publications ------------------------------------------------------------------------------

/// A string or unsigned field of a map; empty / 0 when absent or of another type.
std::string_view StrField(const Value& map, std::string_view key) noexcept;
std::uint64_t UIntField(const Value& map, std::string_view key) noexcept;

/// A welcome's `limits`; protocol.md's value for any the daemon did not send.
Limits ReadLimits(const Value& welcome);

/// An `ack` (4.3).
struct Ack {
  std::uint64_t stored = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t rejected = 0;
  std::string last_rejection;  ///< the message of the last `rejected` entry
  std::vector<ProviderRefusal> refusals;  ///< the `invalid` entries
};
Ack ReadAck(const Value& reply);

/// A reply as the game's ReplyCallback gets it.
Reply ReadReply(const Value& reply);

/// A verdict map (a `verified` purchase reply, or one entry of a purchase topic's `values`) for purchase `id`;
/// nothing when `is_valid` is not a boolean, which a daemon following protocol.md never sends with a verdict.
std::optional<PurchaseResult> ReadVerdict(std::string id, const Value& verdict, std::string_view store);

/// A configs-socket publication (protocol.md section 7).
struct Publication {
  std::uint64_t version = 0;
  Value::Map values;
};
Publication ReadPublication(const Value& publication);

}  // namespace engine_bridge::detail
