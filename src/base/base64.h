// Base64 (libsodium): the URL-safe form without padding (JWTs, join
// tokens, credentials in JSON, sealed secrets) and the original form with
// padding (UCXI content in JSON). Decoding is strict: every character of
// the text must be part of the encoding.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace bzzz {

std::string Base64Url(std::string_view bytes);
Result<std::string> FromBase64Url(std::string_view text);

std::string Base64(std::string_view bytes);
Result<std::string> FromBase64(std::string_view text);

}  // namespace bzzz
