#include "security/redact.h"

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <nlohmann/json.hpp>
#include <regex>

#include "base/json.h"

namespace bzzz::security {

namespace {

char Lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

bool StartsWithIgnoreCase(std::string_view text, std::size_t pos, std::string_view word) {
  if (pos + word.size() > text.size()) return false;
  for (std::size_t i = 0; i < word.size(); ++i) {
    if (Lower(text[pos + i]) != word[i]) return false;
  }
  return true;
}

bool IsWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; }
bool AtWordStart(std::string_view text, std::size_t i) { return i == 0 || !IsWordChar(text[i - 1]); }

// Keys whose values are secrets (lower case). "token" also covers
// access_token, refresh_token, api_token ...
constexpr std::array<std::string_view, 7> kSecretKeys = {"password", "passwd", "secret", "token",
                                                         "api_key", "apikey", "authorization"};

bool IsSecretKey(std::string_view key) {
  std::string lower(key.size(), '\0');
  std::transform(key.begin(), key.end(), lower.begin(), Lower);
  return std::any_of(kSecretKeys.begin(), kSecretKeys.end(),
                     [&](std::string_view k) { return lower.find(k) != std::string::npos; });
}

// Length of a value starting at `pos`, ending at a delimiter (or the closing
// quote when quoted).
std::size_t ValueEnd(std::string_view text, std::size_t pos, char quote) {
  std::size_t i = pos;
  while (i < text.size()) {
    const char c = text[i];
    if (quote != 0 ? c == quote : (std::isspace(static_cast<unsigned char>(c)) || c == '&' || c == ',' ||
                                   c == ';' || c == '"' || c == '\'' || c == '}' || c == ')')) {
      break;
    }
    if (quote != 0 && c == '\\') ++i;
    ++i;
  }
  return std::min(i, text.size());
}

// user:password in base64: at least 8 characters of the alphabet, one of
// them a digit, '+', '/' or '=' (prose after "basic" has none).
bool LooksLikeBase64Credentials(std::string_view v) {
  if (v.size() < 8) return false;
  bool marked = false;
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (!(std::isalnum(u) || c == '+' || c == '/' || c == '=')) return false;
    marked |= std::isdigit(u) || c == '+' || c == '/' || c == '=';
  }
  return marked;
}

enum class Charset { kAlnum, kAlnumUnderscore, kUrlSafe, kUpperDigit };

bool InCharset(char c, Charset set) {
  const auto u = static_cast<unsigned char>(c);
  switch (set) {
    case Charset::kAlnum: return std::isalnum(u) != 0;
    case Charset::kAlnumUnderscore: return std::isalnum(u) != 0 || c == '_';
    case Charset::kUrlSafe: return std::isalnum(u) != 0 || c == '_' || c == '-';
    case Charset::kUpperDigit: return std::isdigit(u) != 0 || (c >= 'A' && c <= 'Z');
  }
  return false;
}

// An API key recognized by its prefix and the length of what follows.
struct KeyShape {
  std::string_view prefix;
  std::size_t min_body;
  std::size_t max_body;  // when equal to min_body: exactly that many
  Charset charset;
};

constexpr std::array<KeyShape, 17> kKeyShapes = {{
    {"ghp_", 30, 255, Charset::kAlnum},           {"gho_", 30, 255, Charset::kAlnum},
    {"ghu_", 30, 255, Charset::kAlnum},           {"ghs_", 30, 255, Charset::kAlnum},
    {"ghr_", 30, 255, Charset::kAlnum},           {"github_pat_", 20, 255, Charset::kAlnumUnderscore},
    {"glpat-", 20, 255, Charset::kUrlSafe},       {"sk-", 20, 255, Charset::kUrlSafe},
    {"xoxb-", 10, 255, Charset::kUrlSafe},        {"xoxp-", 10, 255, Charset::kUrlSafe},
    {"xoxa-", 10, 255, Charset::kUrlSafe},        {"xoxr-", 10, 255, Charset::kUrlSafe},
    {"xoxs-", 10, 255, Charset::kUrlSafe},        {"AKIA", 16, 16, Charset::kUpperDigit},
    {"ASIA", 16, 16, Charset::kUpperDigit},       {"AIza", 35, 35, Charset::kUrlSafe},
    {"xapp-", 10, 255, Charset::kUrlSafe},
}};

// End of a key of a known shape at `i`, or 0.
std::size_t KeyShapeEnd(std::string_view text, std::size_t i, std::size_t* prefix_length) {
  for (const KeyShape& shape : kKeyShapes) {
    if (text.compare(i, shape.prefix.size(), shape.prefix) != 0) continue;
    std::size_t j = i + shape.prefix.size();
    while (j < text.size() && j - i - shape.prefix.size() < shape.max_body + 1 && InCharset(text[j], shape.charset))
      ++j;
    const std::size_t body = j - i - shape.prefix.size();
    if (body < shape.min_body || body > shape.max_body) continue;
    if (j < text.size() && IsWordChar(text[j]) && shape.min_body == shape.max_body) continue;
    *prefix_length = shape.prefix.size();
    return j;
  }
  return 0;
}

// End of a JWT (three base64url parts of at least 10 characters, the first
// starting with "eyJ") at `i`, or 0.
std::size_t JwtEnd(std::string_view text, std::size_t i) {
  if (text.compare(i, 3, "eyJ") != 0) return 0;
  std::size_t j = i;
  for (int part = 0; part < 3; ++part) {
    const std::size_t start = j;
    while (j < text.size() && InCharset(text[j], Charset::kUrlSafe)) ++j;
    if (j - start < 10) return 0;
    if (part < 2) {
      if (j >= text.size() || text[j] != '.') return 0;
      ++j;
    }
  }
  return j;
}

// The built-in rules; returns how many secrets were masked.
std::size_t RedactBuiltIn(std::string_view text, std::string& out) {
  std::size_t masked = 0;
  out.reserve(out.size() + text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    // PEM private keys: mask the whole block.
    if (c == '-' && StartsWithIgnoreCase(text, i, "-----begin ")) {
      const auto header_end = text.find("-----", i + 11);
      if (header_end != std::string_view::npos &&
          text.substr(i, header_end - i).find("PRIVATE KEY") != std::string_view::npos) {
        const auto end = text.find("-----END", header_end);
        const auto close = end == std::string_view::npos ? std::string_view::npos : text.find("-----", end + 8);
        out += "-----BEGIN PRIVATE KEY-----";
        out += kRedacted;
        out += "-----END PRIVATE KEY-----";
        ++masked;
        i = close == std::string_view::npos ? text.size() : close + 5;
        continue;
      }
    }
    // "Bearer <token>" and "Basic <credentials>".
    if (Lower(c) == 'b' && AtWordStart(text, i)) {
      bool done = false;
      for (std::string_view scheme : {std::string_view("bearer "), std::string_view("basic ")}) {
        if (!StartsWithIgnoreCase(text, i, scheme)) continue;
        std::size_t v = i + scheme.size();
        while (v < text.size() && text[v] == ' ') ++v;
        const std::size_t end = ValueEnd(text, v, 0);
        // "basic" is also a word: its credentials must look like base64.
        if (scheme == "basic " && !LooksLikeBase64Credentials(text.substr(v, end - v))) continue;
        if (end > v) {
          out.append(text.substr(i, v - i));
          out += kRedacted;
          ++masked;
          i = end;
          done = true;
          break;
        }
      }
      if (done) continue;
    }
    // scheme://user:PASSWORD@host
    if (c == ':' && text.compare(i, 3, "://") == 0) {
      std::size_t j = i + 3;
      while (j < text.size() && std::string_view("/?#@ \t\r\n\"'<>").find(text[j]) == std::string_view::npos) ++j;
      const std::string_view userinfo = text.substr(i + 3, j - i - 3);
      const auto colon = userinfo.find(':');
      if (j < text.size() && text[j] == '@' && colon != std::string_view::npos && colon + 1 < userinfo.size()) {
        out += "://";
        out.append(userinfo.substr(0, colon + 1));
        out += kRedacted;
        out += '@';
        ++masked;
        i = j + 1;
        continue;
      }
    }
    if (AtWordStart(text, i)) {
      std::size_t prefix = 0;
      if (const std::size_t end = KeyShapeEnd(text, i, &prefix); end != 0) {
        out.append(text.substr(i, prefix));
        out += kRedacted;
        ++masked;
        i = end;
        continue;
      }
      if (const std::size_t end = JwtEnd(text, i); end != 0) {
        out += kRedacted;
        ++masked;
        i = end;
        continue;
      }
    }
    // key=value, key: value, "key": "value" for secret-looking keys.
    bool done = false;
    for (std::string_view key : kSecretKeys) {
      if (Lower(c) != key[0] || !StartsWithIgnoreCase(text, i, key)) continue;
      std::size_t k = i + key.size();
      while (k < text.size() && IsWordChar(text[k])) ++k;  // client_secret, access_token_x
      std::size_t j = k;
      if (j < text.size() && (text[j] == '"' || text[j] == '\'')) ++j;
      while (j < text.size() && text[j] == ' ') ++j;
      if (j >= text.size() || (text[j] != '=' && text[j] != ':')) continue;
      ++j;
      while (j < text.size() && text[j] == ' ') ++j;
      char quote = 0;
      if (j < text.size() && (text[j] == '"' || text[j] == '\'')) quote = text[j++];
      // "Authorization: Bearer x" keeps the scheme visible.
      if (quote == 0) {
        for (std::string_view scheme : {std::string_view("bearer "), std::string_view("basic ")}) {
          if (StartsWithIgnoreCase(text, j, scheme)) j += scheme.size();
        }
      }
      const std::size_t end = ValueEnd(text, j, quote);
      if (end == j) continue;
      // An already masked value stays as it is (counted once).
      if (text.substr(j, end - j) != kRedacted) ++masked;
      out.append(text.substr(i, j - i));
      out += kRedacted;
      i = end;
      done = true;
      break;
    }
    if (done) continue;
    out.push_back(c);
    ++i;
  }
  return masked;
}

constexpr std::size_t kRegexPiece = 4096;

}  // namespace

std::string RedactSecrets(std::string_view text) {
  std::string out;
  RedactBuiltIn(text, out);
  return out;
}

std::string_view RedactionSiteName(RedactionSite site) {
  switch (site) {
    case RedactionSite::kLog: return "log";
    case RedactionSite::kTaskOutput: return "task_output";
    case RedactionSite::kContext: return "context";
    case RedactionSite::kAudit: return "audit";
    case RedactionSite::kDiscussion: return "discussion";
  }
  return "other";
}

Result<std::vector<RedactionPattern>> ParseRedactionPatterns(const std::vector<std::string>& items) {
  std::vector<RedactionPattern> out;
  for (const std::string& item : items) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size()) {
      return InvalidArgument("\"" + item + "\": expected name=regex");
    }
    RedactionPattern p{item.substr(0, eq), item.substr(eq + 1)};
    try {
      std::regex compiled(p.regex, std::regex::ECMAScript);
      // A pattern that matches the empty string would "redact" between
      // every two characters.
      if (std::regex_match(std::string(), compiled)) {
        return InvalidArgument("pattern " + p.name + " matches the empty string");
      }
    } catch (const std::regex_error& e) {
      return InvalidArgument("pattern " + p.name + " is not a valid regular expression: " + e.what());
    }
    out.push_back(std::move(p));
  }
  return out;
}

struct Redactor::Impl {
  std::vector<std::regex> patterns;
  mutable std::array<std::atomic<std::uint64_t>, 5> counts{};
  std::array<prometheus::Counter*, 5> counters{};

  // Built-in rules, then the patterns; how many secrets were masked.
  std::size_t RedactInto(std::string_view text, std::string& out) const {
    std::size_t masked = RedactBuiltIn(text, out);
    if (patterns.empty() || out.empty()) return masked;
    for (const std::regex& re : patterns) {
      std::string next;
      next.reserve(out.size());
      std::size_t start = 0;
      while (start < out.size()) {
        std::size_t end = out.find('\n', start);
        end = end == std::string::npos ? out.size() : end + 1;
        end = std::min(end, start + kRegexPiece);
        const std::string piece = out.substr(start, end - start);
        std::size_t last = 0;
        for (auto it = std::sregex_iterator(piece.begin(), piece.end(), re); it != std::sregex_iterator(); ++it) {
          if (it->length(0) == 0) continue;
          next.append(piece, last, static_cast<std::size_t>(it->position(0)) - last);
          next += kRedacted;
          last = static_cast<std::size_t>(it->position(0) + it->length(0));
          ++masked;
        }
        next.append(piece, last, std::string::npos);
        start = end;
      }
      out = std::move(next);
    }
    return masked;
  }

  void Count(RedactionSite site, std::size_t n) const {
    if (n == 0) return;
    const auto i = static_cast<std::size_t>(site);
    counts[i].fetch_add(n, std::memory_order_relaxed);
    if (counters[i]) counters[i]->Increment(static_cast<double>(n));
  }

  void RedactValue(nlohmann::json& v, std::size_t* masked) const {
    if (v.is_string()) {
      std::string out;
      const std::size_t n = RedactInto(v.get_ref<const std::string&>(), out);
      if (n > 0) {
        v = out;
        *masked += n;
      }
    } else if (v.is_object()) {
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (IsSecretKey(it.key()) && (it->is_string() || it->is_number())) {
          if (!(it->is_string() && it->get_ref<const std::string&>() == kRedacted)) {
            *it = std::string(kRedacted);
            ++*masked;
          }
        } else {
          RedactValue(*it, masked);
        }
      }
    } else if (v.is_array()) {
      for (auto& item : v) RedactValue(item, masked);
    }
  }
};

Result<std::shared_ptr<const Redactor>> Redactor::Create(const std::vector<RedactionPattern>& patterns,
                                                         prometheus::Registry* metrics) {
  auto impl = std::make_unique<Impl>();
  for (const RedactionPattern& p : patterns) {
    try {
      impl->patterns.emplace_back(p.regex, std::regex::ECMAScript | std::regex::optimize);
    } catch (const std::regex_error& e) {
      return InvalidArgument("security.shhh.patterns: " + p.name + ": " + e.what());
    }
  }
  if (metrics != nullptr) {
    auto& family = prometheus::BuildCounter()
                       .Name("no_shhh_redactions_total")
                       .Help("Secrets masked before text left the node or reached the store, by site")
                       .Register(*metrics);
    for (RedactionSite site :
         {RedactionSite::kLog, RedactionSite::kTaskOutput, RedactionSite::kContext, RedactionSite::kAudit,
          RedactionSite::kDiscussion}) {
      impl->counters[static_cast<std::size_t>(site)] =
          &family.Add({{"site", std::string(RedactionSiteName(site))}});
    }
  }
  return std::shared_ptr<const Redactor>(new Redactor(std::move(impl)));
}

Redactor::Redactor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Redactor::~Redactor() = default;

std::string Redactor::Redact(std::string_view text, RedactionSite site) const {
  std::string out;
  impl_->Count(site, impl_->RedactInto(text, out));
  return out;
}

std::string Redactor::RedactJson(std::string_view json_text, RedactionSite site) const {
  // Most documents hold nothing to mask: keep them byte for byte.
  std::string scanned;
  if (impl_->RedactInto(json_text, scanned) == 0) return std::string(json_text);
  nlohmann::json doc = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Redact(json_text, site);
  std::size_t masked = 0;
  impl_->RedactValue(doc, &masked);
  impl_->Count(site, masked);
  return DumpJson(doc);
}

std::uint64_t Redactor::Count(RedactionSite site) const {
  return impl_->counts[static_cast<std::size_t>(site)].load(std::memory_order_relaxed);
}

namespace {

std::shared_ptr<const Redactor> BuiltInRedactor() {
  static const std::shared_ptr<const Redactor> built_in = *Redactor::Create({}, nullptr);
  return built_in;
}

std::atomic<std::shared_ptr<const Redactor>>& Installed() {
  static std::atomic<std::shared_ptr<const Redactor>> installed;
  return installed;
}

}  // namespace

void InstallRedactor(std::shared_ptr<const Redactor> redactor) { Installed().store(std::move(redactor)); }

std::shared_ptr<const Redactor> CurrentRedactor() {
  auto r = Installed().load();
  return r ? r : BuiltInRedactor();
}

}  // namespace bzzz::security
