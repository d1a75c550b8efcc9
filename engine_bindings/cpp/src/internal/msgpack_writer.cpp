#include "msgpack_writer.hpp"

#include <cstring>

namespace engine_bridge::detail {

void Writer::Double(double d) {
  std::uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  char buf[9];
  buf[0] = static_cast<char>(0xcb);
  for (int i = 0; i < 8; ++i) buf[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
  sink_.write(buf, sizeof buf);
}

void Writer::Any(const Value& v) {
  switch (v.type()) {
    case Value::Type::Nil: Nil(); break;
    case Value::Type::Bool: Bool(*v.AsBool()); break;
    case Value::Type::Int: Int(*v.AsInt()); break;
    case Value::Type::UInt: UInt(*v.AsUInt()); break;
    case Value::Type::Double: Double(*v.AsDouble()); break;
    case Value::Type::String: Str(*v.AsString()); break;
    case Value::Type::Bytes: Bin(v.AsBytes()->data); break;
    case Value::Type::Array:
      Array(static_cast<std::uint32_t>(v.AsArray()->size()));
      for (const Value& item : *v.AsArray()) Any(item);
      break;
    case Value::Type::Map:
      Map(static_cast<std::uint32_t>(v.AsMap()->size()));
      for (const auto& [k, item] : *v.AsMap()) {
        Str(k);
        Any(item);
      }
      break;
  }
}

std::string Pack(const Value& v) {
  std::string out;
  Writer w(out);
  w.Any(v);
  return out;
}

}  // namespace engine_bridge::detail
