// SHHH, first part: removing secrets from text before it is logged.
//
// Masks bearer/basic credentials, values of secret-looking keys
// (password, secret, token, api_key, client_secret, authorization in
// "key=value", "key: value" and JSON forms) and PEM private key blocks.
// Pure function; thread-safe. Fast when the text holds nothing to redact.
#pragma once

#include <string>
#include <string_view>

namespace bzzz::security {

inline constexpr std::string_view kRedacted = "***";

std::string RedactSecrets(std::string_view text);

}  // namespace bzzz::security
