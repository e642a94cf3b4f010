#include "base/json.h"

#include <atomic>

#include "base/utf8.h"

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

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (std::size_t i = 0; i < s.size();) {
    // The common case, a run of printable ASCII that needs no escape, is
    // copied in one append.
    std::size_t plain = i;
    while (plain < s.size()) {
      const auto p = static_cast<unsigned char>(s[plain]);
      if (p < 0x20 || p >= 0x80 || p == '"' || p == '\\') break;
      ++plain;
    }
    if (plain > i) {
      out.append(s.data() + i, plain - i);
      i = plain;
      continue;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t n = Utf8SequenceAt(s, i);
      if (n == 0) {
        out += "\xEF\xBF\xBD";  // U+FFFD for each byte that belongs to no sequence
        ++i;
      } else {
        out.append(s.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        out += "\\u00";  // the other control characters
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
    }
    ++i;
  }
  out.push_back('"');
}

}  // namespace bzzz
