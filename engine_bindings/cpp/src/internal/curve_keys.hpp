// CURVE keys for a client straight to a relay (protocol.md 11.1): the relay's public key checked, and this
// install's own key pair, made once with zmq_curve_keypair and kept in a file at the game's chosen path.
// Internal. The secret key is never put in a message or a log line.
#pragma once

#include <string>
#include <string_view>

#include "engine_bridge/engine_bridge.hpp"

namespace engine_bridge::detail {

inline constexpr std::size_t kZ85KeyChars = 40;

struct CurveKeyPair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters

  CurveKeyPair() = default;
  CurveKeyPair(const CurveKeyPair&) = default;
  CurveKeyPair& operator=(const CurveKeyPair&) = default;
  ~CurveKeyPair();  // wipes the secret
};

/// Whether `key` is a CURVE key written in Z85 (40 characters that decode to 32 bytes).
bool IsZ85Key(std::string_view key);

/// The key pair kept at `path`, made there the first time (owner-only permissions on POSIX). The file is a
/// ZeroMQ certificate, as pyzmq's zmq.auth writes them (`public-key = "..."`, `secret-key = "..."`).
/// A file that exists but does not hold a usable pair is an error, never replaced: the relay knows this
/// device by the key in it.
Status LoadOrMakeKeyPair(const std::string& path, CurveKeyPair& out);

}  // namespace engine_bridge::detail
