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
#include <string>
#include <string_view>

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

// `value` as compact JSON text; bytes that are not UTF-8 (a program's
// output, a server's answer) become U+FFFD instead of throwing.
std::string DumpJson(const nlohmann::json& value);

}  // namespace bzzz
