// SHHH: secrets removed from text before it leaves the node or reaches the
// store.
//
// Built in (RedactSecrets, fast when the text holds nothing to redact):
//   - "Bearer <x>" and "Basic <x>" credentials;
//   - values of secret-looking keys (password, passwd, secret, token,
//     api_key, apikey, authorization, and any key containing them:
//     client_secret, access_token, NO_DB_PASSWORD) in key=value,
//     key: value and JSON forms;
//   - PEM private key blocks (RSA, EC, OPENSSH, PKCS#8 ...);
//   - passwords in URLs (scheme://user:PASSWORD@host);
//   - API keys of well-known shapes: GitHub (ghp_, gho_, ghu_, ghs_, ghr_,
//     github_pat_), GitLab (glpat-), OpenAI/Anthropic style (sk-...),
//     Slack (xoxb-, xoxp-, ...), AWS access key ids (AKIA..., ASIA...),
//     Google API keys (AIza...), and JWTs (eyJ... three dot-separated
//     base64url parts).
// Configured (security.shhh.patterns): ECMAScript regular expressions, each
// match replaced by "***"; applied to pieces of at most 4096 bytes (lines,
// or slices of longer lines), so a match cannot span such a boundary.
//
// A Redactor counts what it masks by site (no_shhh_redactions_total{site}).
// The node installs one at start (InstallRedactor); until then, and in
// tools, Redact() uses the built-in rules. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace prometheus {
class Registry;
}

namespace bzzz::security {

inline constexpr std::string_view kRedacted = "***";

// The built-in rules, uncounted.
std::string RedactSecrets(std::string_view text);

// Where text was redacted (a label of no_shhh_redactions_total).
enum class RedactionSite { kLog, kTaskOutput, kContext, kAudit, kDiscussion };
std::string_view RedactionSiteName(RedactionSite site);  // "log", "task_output", ..., "discussion" (HMMM)

struct RedactionPattern {
  std::string name;   // for messages
  std::string regex;  // ECMAScript
};

// "name=regex" items of security.shhh.patterns; InvalidArgument naming the
// item that is malformed or does not compile.
Result<std::vector<RedactionPattern>> ParseRedactionPatterns(const std::vector<std::string>& items);

class Redactor {
 public:
  // The built-in rules plus `patterns`. `metrics` may be null.
  static Result<std::shared_ptr<const Redactor>> Create(const std::vector<RedactionPattern>& patterns,
                                                        prometheus::Registry* metrics);
  ~Redactor();

  std::string Redact(std::string_view text, RedactionSite site) const;
  // A JSON document with every string in it redacted (and the whole value
  // of a secret-looking key masked), still valid JSON; text that is not
  // JSON is redacted as text.
  std::string RedactJson(std::string_view json_text, RedactionSite site) const;
  // Secrets masked so far at `site`.
  std::uint64_t Count(RedactionSite site) const;

  struct Impl;

 private:
  explicit Redactor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The process's redactor; the built-in one until a node installs its own.
void InstallRedactor(std::shared_ptr<const Redactor> redactor);
std::shared_ptr<const Redactor> CurrentRedactor();
inline std::string Redact(std::string_view text, RedactionSite site) { return CurrentRedactor()->Redact(text, site); }
inline std::string RedactJson(std::string_view text, RedactionSite site) {
  return CurrentRedactor()->RedactJson(text, site);
}

}  // namespace bzzz::security
