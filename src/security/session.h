// A browser session presented in a Cookie header, as the HTTP pipeline asks
// about it. The sign-in that creates sessions lives in src/auth; this is the
// seam the server calls when a request carries no Authorization header.
#pragma once

#include <string>
#include <string_view>

#include "security/identity.h"

namespace bzzz::security {

struct SessionCheck {
  enum class Kind {
    kNone,     // no session cookie: authenticate as if there were no credential
    kValid,    // `identity` is the session's
    kInvalid,  // a session cookie that is unknown or expired (401)
    kCsrf,     // a valid session, but a state-changing request without its CSRF token (403)
  };
  Kind kind = Kind::kNone;
  Identity identity;
  std::string reason;  // safe to return to the client
};

class SessionAuthenticator {
 public:
  virtual ~SessionAuthenticator() = default;
  // `unsafe`: the request changes state (POST, PUT, PATCH, DELETE); then
  // `csrf_header` (X-CSRF-Token) must be the session's token. Fast and
  // non-blocking: called on the HTTP I/O threads.
  virtual SessionCheck Check(std::string_view cookie_header, bool unsafe, std::string_view csrf_header) const = 0;
};

}  // namespace bzzz::security
