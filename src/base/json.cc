#include "base/json.h"

#include <atomic>

namespace bzzz {

namespace {
std::atomic<int> g_max_depth{JsonLimits{}.max_depth};
std::atomic<std::size_t> g_max_elements{JsonLimits{}.max_elements};
}  // namespace

void SetJsonLimits(const JsonLimits& limits) {
  g_max_depth = limits.max_depth;
  g_max_elements = limits.max_elements;
}

JsonLimits CurrentJsonLimits() { return {g_max_depth.load(), g_max_elements.load()}; }

std::string JsonShapeProblem(std::string_view text, const JsonLimits& limits) {
  int depth = 0;
  std::size_t elements = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > limits.max_depth) {
          return "JSON nests deeper than " + std::to_string(limits.max_depth) + " levels";
        }
        ++elements;
        break;
      case ']':
      case '}':
        --depth;
        break;
      case ',':
        ++elements;
        break;
      default:
        break;
    }
    if (elements > limits.max_elements) {
      return "JSON holds more than " + std::to_string(limits.max_elements) + " values";
    }
  }
  return "";
}

nlohmann::json ParseJson(std::string_view text, std::string* why) {
  std::string problem = JsonShapeProblem(text, CurrentJsonLimits());
  if (!problem.empty()) {
    if (why) *why = std::move(problem);
    return nlohmann::json(nlohmann::json::value_t::discarded);
  }
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (why) *why = j.is_discarded() ? "malformed JSON" : "";
  return j;
}

std::string DumpJson(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace bzzz
