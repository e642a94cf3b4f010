// Per-subsystem error codes, in the manner of Redpanda's errc.h: each
// subsystem that needs precise reasons declares an `enum class Errc` and an
// ErrorCategory saying, for each value, its generic StatusCode and its HTTP
// status. A Status built with Error(reason, message) carries both, so code
// above the subsystem branches on the reason (never on the message text)
// and http::HttpStatusOf answers the reason's HTTP status.
//
//   namespace bzzz::ucxl {
//   enum class Errc { kInvalidAddress = 1, ... };
//   const ErrorCategory& Category();
//   inline std::error_code make_error_code(Errc e) { return {static_cast<int>(e), Category()}; }
//   }
//   template <> struct std::is_error_code_enum<bzzz::ucxl::Errc> : std::true_type {};
//
//   return Error(ucxl::Errc::kAlreadyDeleted, key + " was deleted at version 3");
//   if (status.reason() == ucxl::Errc::kAlreadyDeleted) ...
#pragma once

#include <string>
#include <system_error>
#include <utility>

#include "base/status.h"

namespace bzzz {

class ErrorCategory : public std::error_category {
 public:
  // The generic code a reason falls under.
  virtual StatusCode Generic(int value) const = 0;
  // The HTTP status a response carrying this reason has.
  virtual int HttpStatus(int value) const = 0;
};

// A Status with `reason` and the generic code its category gives it.
template <typename E>
  requires std::is_error_code_enum_v<E>
Status Error(E reason, std::string message) {
  std::error_code ec = make_error_code(reason);
  const auto& category = static_cast<const ErrorCategory&>(ec.category());
  return Status(category.Generic(ec.value()), std::move(message), ec);
}

// The reason's category when it is one of ours, else null.
inline const ErrorCategory* CategoryOf(const Status& status) {
  if (!status.reason()) return nullptr;
  return dynamic_cast<const ErrorCategory*>(&status.reason().category());
}

}  // namespace bzzz
