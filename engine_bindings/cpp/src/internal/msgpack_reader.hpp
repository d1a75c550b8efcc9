// msgpack decoding of the daemon's replies and publications into Value. Internal.
#pragma once

#include <cstddef>
#include <optional>

#include "engine_bridge/engine_bridge.hpp"

namespace engine_bridge::detail {

/// The one msgpack value a frame holds, or nothing when it is not exactly one valid value. Map entries whose
/// key is not a string are left out (protocol.md section 2: keys are strings); extension types become nil.
std::optional<Value> Decode(const void* data, std::size_t size) noexcept;

}  // namespace engine_bridge::detail
