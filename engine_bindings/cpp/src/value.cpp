// Value, declared in the public header.
#include "engine_bridge/engine_bridge.hpp"

namespace engine_bridge {

std::optional<bool> Value::AsBool() const noexcept {
  if (const bool* b = std::get_if<bool>(&v_)) return *b;
  return std::nullopt;
}

std::optional<std::int64_t> Value::AsInt() const noexcept {
  if (const std::int64_t* i = std::get_if<std::int64_t>(&v_)) return *i;
  return std::nullopt;  // a UInt above INT64_MAX does not fit
}

std::optional<std::uint64_t> Value::AsUInt() const noexcept {
  if (const std::uint64_t* u = std::get_if<std::uint64_t>(&v_)) return *u;
  if (const std::int64_t* i = std::get_if<std::int64_t>(&v_); i && *i >= 0) return static_cast<std::uint64_t>(*i);
  return std::nullopt;
}

std::optional<double> Value::AsDouble() const noexcept {
  if (const double* d = std::get_if<double>(&v_)) return *d;
  if (const std::int64_t* i = std::get_if<std::int64_t>(&v_)) return static_cast<double>(*i);
  if (const std::uint64_t* u = std::get_if<std::uint64_t>(&v_)) return static_cast<double>(*u);
  return std::nullopt;
}

const Value* Value::Find(std::string_view key) const noexcept {
  if (const Map* m = AsMap()) {
    for (const auto& [k, v] : *m) {
      if (k == key) return &v;
    }
  }
  return nullptr;
}

}  // namespace engine_bridge
