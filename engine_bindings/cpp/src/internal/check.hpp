// Argument checks at the call site, before anything is queued, so that a bad call fails at once with a
// message naming the argument instead of being refused by the daemon later (protocol.md sections 4, 5, 8).
// Internal.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "engine_bridge/engine_bridge.hpp"
#include "msgpack_writer.hpp"
#include "wire.hpp"

namespace engine_bridge::detail {

Status Invalid(std::string message);
/// "api: rest".
std::string Prefix(std::string_view api, std::string_view rest);
/// "NaN", "infinity" or the number, for error messages.
std::string NumberText(double d);

/// Code points in valid UTF-8, or nothing when `s` is not valid UTF-8 (the daemon refuses the whole
/// message then, so one bad string must never reach a batch).
std::optional<std::size_t> Utf8Chars(std::string_view s) noexcept;

/// Where a value sits inside an event, rendered only when there is an error to report.
struct Path {
  const Path* parent = nullptr;
  std::string_view key;  // used when is_index is false
  std::size_t index = 0;
  bool is_index = false;
  std::string Render() const;
};

/// A string inside an event: valid UTF-8, at most max_string_chars.
Status CheckString(std::string_view s, const Path& where, const Limits& limits);
/// A map key: valid UTF-8, 1–64 chars.
Status CheckKey(std::string_view key, const Path& where);
/// Packs `v`, checking it against the limits (depth, entries, key and string lengths, finite floats, UTF-8,
/// unique keys); on error `w` holds garbage and the Status names the path.
Status PackChecked(Writer& w, const Value& v, const Path& where, std::size_t depth, const Limits& limits);

/// A string argument that must be present, valid UTF-8 and `min..max` chars long.
Status CheckText(std::string_view api, const char* name, Text t, std::size_t min_chars, std::size_t max_chars);
/// One part of a `:`-joined event_id: 1–64 chars without ':'.
Status CheckPart(std::string_view api, const char* name, Text t);
/// An optional argument: null or empty means absent.
bool Present(Text t) noexcept;
Status CheckFinite(std::string_view api, const char* name, double d);
/// A client-chosen id (events, purchases): 1..max_event_id_chars of A–Z a–z 0–9 - _ . :
Status CheckId(std::string_view api, const char* name, std::string_view id, const Limits& limits);
/// Standard, padded base64 (receipts and signatures).
Status CheckBase64(std::string_view api, const char* name, std::string_view s);
/// An ISO 4217 code: three capital letters.
Status CheckCurrency(std::string_view api, Text currency);
Status NotInEnum(std::string_view api, const char* name);
/// A `:`-joined event_id of `category` (a wire name): its parts, their count and its first part.
Status CheckJoinedId(std::string_view api, std::string_view category, std::string_view id);
/// The generic Track()'s fields for `category`: its required fields with their kinds, and the shape of
/// its `:`-joined event_id (the typed helpers are right by construction).
Status CheckCategoryFields(std::string_view api, EventCategory category, const Fields& fields);
/// Connect()'s GameInfo: the required fields, and every length (protocol.md 4.1).
Status CheckGameInfo(const GameInfo& game);

}  // namespace engine_bridge::detail
