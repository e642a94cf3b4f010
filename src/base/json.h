// Parsing JSON that comes from outside (HTTP bodies, P2P messages, DHT
// records, files, answers of other servers) within limits.
//
// nlohmann::json parses iteratively, but copying, comparing and dumping a
// value recurse once per level: a 140 KB body of nested arrays overflowed
// the stack of an HTTP thread. Every such text goes through ParseJson, which
// refuses (a discarded value) what nests deeper than max_depth or holds more
// than max_elements values before nlohmann sees it, so no value the node
// holds is deeper than the limit. The limits are process-wide, set once at
// start from node.json_max_depth and node.json_max_elements.
//
// Include only from .cc files (it brings nlohmann/json.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>

#include <nlohmann/json.hpp>

namespace bzzz {

struct JsonLimits {
  int max_depth = 64;                 // arrays and objects inside one another
  std::size_t max_elements = 100000;  // values in containers (separators plus containers)
};

void SetJsonLimits(const JsonLimits& limits);
JsonLimits CurrentJsonLimits();

// Why `text` exceeds `limits` ("" when it does not). Does not check syntax;
// linear, no recursion.
std::string JsonShapeProblem(std::string_view text, const JsonLimits& limits);

// `text` parsed, or a discarded value when it is malformed or exceeds the
// current limits; `why`, when given, says which ("" on success).
nlohmann::json ParseJson(std::string_view text, std::string* why = nullptr);

// `j` as an integer of type T. Throws nlohmann::json::type_error when it is
// not an integer or does not fit T: nlohmann's get<T>() converts a float or
// a number out of range unchecked (undefined behaviour for a float such as
// 1e84, found by the tasks fuzz target).
template <typename T>
T GetInt(const nlohmann::json& j) {
  static_assert(std::is_integral_v<T>);
  if (j.is_number_unsigned()) {
    const auto u = j.get<std::uint64_t>();
    if (u <= static_cast<std::uint64_t>(std::numeric_limits<T>::max())) return static_cast<T>(u);
  } else if (j.is_number_integer()) {
    const auto v = j.get<std::int64_t>();
    if constexpr (std::is_signed_v<T>) {
      if (v >= static_cast<std::int64_t>(std::numeric_limits<T>::min()) &&
          v <= static_cast<std::int64_t>(std::numeric_limits<T>::max())) {
        return static_cast<T>(v);
      }
    } else {
      if (v >= 0 && static_cast<std::uint64_t>(v) <= static_cast<std::uint64_t>(std::numeric_limits<T>::max())) {
        return static_cast<T>(v);
      }
    }
  }
  throw nlohmann::json::type_error::create(302, "expected an integer in range, got " + j.dump(), &j);
}

// `value` as compact JSON text; bytes that are not UTF-8 (a program's
// output, a server's answer) become U+FFFD instead of throwing.
std::string DumpJson(const nlohmann::json& value);

}  // namespace bzzz
