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
#include <utility>
#include <vector>

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

// --- Strict struct mappings -------------------------------------------------
//
// BZZZ_JSON_STRICT(Type, field, ...) defines to_json (one member per field,
// as nlohmann's NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE does) and a from_json
// that reads every field strictly: present, of its own JSON type, integers
// in range (GetInt). nlohmann's own macros convert instead: they read 1.9,
// true or 4294967297 into an int as 1, which a message from outside must
// not get away with. A missing or mistyped field throws a
// nlohmann::json::exception whose text names the field. Use it at the
// namespace of the type (ADL finds the functions); range and consistency
// checks beyond types stay with the caller.
namespace json_strict {

inline void Read(const nlohmann::json& j, std::string& out) {
  if (!j.is_string()) throw nlohmann::json::type_error::create(302, "expected a string, got " + j.dump(), &j);
  out = j.get<std::string>();
}
inline void Read(const nlohmann::json& j, bool& out) {
  if (!j.is_boolean()) throw nlohmann::json::type_error::create(302, "expected true or false, got " + j.dump(), &j);
  out = j.get<bool>();
}
inline void Read(const nlohmann::json& j, double& out) {
  if (!j.is_number()) throw nlohmann::json::type_error::create(302, "expected a number, got " + j.dump(), &j);
  out = j.get<double>();
}
template <typename T>
  requires(std::is_integral_v<T> && !std::is_same_v<T, bool>)
void Read(const nlohmann::json& j, T& out) {
  out = GetInt<T>(j);
}
template <typename T>
void Read(const nlohmann::json& j, std::vector<T>& out) {
  if (!j.is_array()) throw nlohmann::json::type_error::create(302, "expected an array, got " + j.dump(), &j);
  out.clear();
  out.reserve(j.size());
  for (const auto& x : j) {
    T v{};
    Read(x, v);
    out.push_back(std::move(v));
  }
}
// Another strict struct (its from_json, found by ADL).
template <typename T>
void Read(const nlohmann::json& j, T& out) {
  j.get_to(out);
}

template <typename T>
void Field(const nlohmann::json& j, const char* name, T& out) {
  if (!j.is_object()) throw nlohmann::json::type_error::create(302, "expected an object", &j);
  const auto it = j.find(name);
  if (it == j.end()) throw nlohmann::json::out_of_range::create(403, std::string("no '") + name + "'", &j);
  try {
    Read(*it, out);
  } catch (const nlohmann::json::exception& e) {
    throw nlohmann::json::type_error::create(302, std::string("'") + name + "': " + e.what(), &j);
  }
}

}  // namespace json_strict

#define BZZZ_JSON_FROM_STRICT(v1) ::bzzz::json_strict::Field(nlohmann_json_j, #v1, nlohmann_json_t.v1);
#define BZZZ_JSON_STRICT(Type, ...)                                                          \
  inline void to_json(nlohmann::json& nlohmann_json_j, const Type& nlohmann_json_t) {         \
    NLOHMANN_JSON_EXPAND(NLOHMANN_JSON_PASTE(NLOHMANN_JSON_TO, __VA_ARGS__))                 \
  }                                                                                         \
  inline void from_json(const nlohmann::json& nlohmann_json_j, Type& nlohmann_json_t) {       \
    NLOHMANN_JSON_EXPAND(NLOHMANN_JSON_PASTE(BZZZ_JSON_FROM_STRICT, __VA_ARGS__))            \
  }

// `value` as compact JSON text; bytes that are not UTF-8 (a program's
// output, a server's answer) become U+FFFD instead of throwing.
std::string DumpJson(const nlohmann::json& value);

// Appends `s` as a JSON string (quotes included), for writers that build
// JSON text without a tree; bytes that are not UTF-8 become U+FFFD, as in
// DumpJson.
void AppendJsonString(std::string& out, std::string_view s);

}  // namespace bzzz
