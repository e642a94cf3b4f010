#include "security/redact.h"

#include <array>
#include <algorithm>
#include <cctype>

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

// Keys whose values are secrets (lower case). "token" also covers
// access_token, refresh_token, api_token ...
constexpr std::array<std::string_view, 7> kSecretKeys = {"password", "passwd", "secret", "token",
                                                         "api_key", "apikey", "authorization"};

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

}  // namespace

std::string RedactSecrets(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    // PEM private keys: mask the whole block.
    if (text[i] == '-' && StartsWithIgnoreCase(text, i, "-----begin ")) {
      const auto header_end = text.find("-----", i + 11);
      if (header_end != std::string_view::npos &&
          text.substr(i, header_end - i).find("PRIVATE KEY") != std::string_view::npos) {
        const auto end = text.find("-----END", header_end);
        const auto close = end == std::string_view::npos ? std::string_view::npos : text.find("-----", end + 8);
        out += "-----BEGIN PRIVATE KEY-----";
        out += kRedacted;
        out += "-----END PRIVATE KEY-----";
        i = close == std::string_view::npos ? text.size() : close + 5;
        continue;
      }
    }
    // "Bearer <token>" and "Basic <credentials>".
    if ((Lower(text[i]) == 'b') && (i == 0 || !IsWordChar(text[i - 1]))) {
      for (std::string_view scheme : {std::string_view("bearer "), std::string_view("basic ")}) {
        if (StartsWithIgnoreCase(text, i, scheme)) {
          std::size_t v = i + scheme.size();
          while (v < text.size() && text[v] == ' ') ++v;
          const std::size_t end = ValueEnd(text, v, 0);
          if (end > v) {
            out.append(text.substr(i, v - i));
            out += kRedacted;
            i = end;
            goto next;
          }
        }
      }
    }
    // key=value, key: value, "key": "value" for secret-looking keys.
    for (std::string_view key : kSecretKeys) {
      if (Lower(text[i]) != key[0] || !StartsWithIgnoreCase(text, i, key)) continue;
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
      out.append(text.substr(i, j - i));
      out += kRedacted;
      i = end;
      goto next;
    }
    out.push_back(text[i]);
    ++i;
  next:;
  }
  return out;
}

}  // namespace bzzz::security
