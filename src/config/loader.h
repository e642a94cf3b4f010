// Loading, validating and rendering the configuration.
//
// LoadConfig merges, in increasing precedence: defaults < file < environment
// < overrides (command-line flags). Every problem is reported with the key
// path it concerns ("http.port", "security.api_tokens[1].roles") and the
// source it came from; unknown keys are errors. Thread-safe (pure functions).
#pragma once

#include <map>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"

namespace bzzz::config {

struct ConfigIssue {
  std::string path;     // key path, e.g. "http.port"
  std::string source;   // "file:/etc/bzzz.yaml", "env:NO_SERVICE_PORT", "flag:--http-listen", "default"
  std::string message;  // what is wrong, e.g. "expected an integer in 1..65535, got \"abc\""

  // "http.port (env:NO_SERVICE_PORT): expected an integer in 1..65535, got \"abc\""
  std::string ToString() const;
};

struct LoadOptions {
  std::optional<std::string> file;            // YAML or JSON file; none: defaults only
  // The document itself instead of reading `file` (which then only names
  // the source in messages). For tests and fuzzing.
  std::optional<std::string> text;
  bool text_is_json = false;                  // parse `text` as JSON (else YAML)
  std::map<std::string, std::string> env;     // environment snapshot (see EnvironmentSnapshot)
  // Flag overrides as (key path, value as text), applied last, in order.
  // The source reported for them is "flag".
  std::vector<std::pair<std::string, std::string>> overrides;
};

struct LoadResult {
  Config config;                       // meaningful only when errors is empty
  std::vector<ConfigIssue> errors;     // invalid values, unknown keys, bad syntax
  std::vector<ConfigIssue> warnings;   // e.g. unknown BZZZ_* variables
  bool ok() const { return errors.empty(); }
};

// Loads and validates. Never throws.
LoadResult LoadConfig(const LoadOptions& options);

// The process environment as a map.
std::map<std::string, std::string> EnvironmentSnapshot();

enum class RenderFormat { kYaml, kJson };

// The configuration as a document that LoadConfig accepts back. Secrets
// (passwords, client secrets) are replaced by "***" when mask_secrets.
std::string RenderConfig(const Config& config, RenderFormat format, bool mask_secrets = true);

// Every configuration key path with its environment variable names, type,
// default and description: the source of docs/configuration.md.
struct KeyInfo {
  std::string path;
  std::string type;
  std::string default_value;
  std::vector<std::string> env;
  bool secret = false;
  std::string description;
};
std::vector<KeyInfo> DescribeKeys();

// A duration as the configuration writes it ("500ms", "30s", "5m", "24h";
// a bare number is milliseconds), in milliseconds; nullopt when malformed.
std::optional<std::int64_t> ParseDurationMs(std::string_view text);

}  // namespace bzzz::config
