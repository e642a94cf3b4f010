// The UCXL subsystem's error reasons (base/errc.h) and the one mapping of a
// Status to a UCXL code ("UCXL-409-CONFLICT"), whose number is the HTTP
// status of the UCXI response (SPEC §3.9).
#pragma once

#include <string_view>
#include <system_error>

#include "base/errc.h"
#include "base/status.h"

namespace bzzz::ucxl {

enum class Errc {
  kInvalidAddress = 1,    // 400 INVALID_ADDRESS: the text is not a UCXL address
  kTemporalInvalid,       // 400 TEMPORAL_INVALID: a temporal part this operation cannot use, or out of range
  kInvalidPayload,        // 400 INVALID_PAYLOAD: author, content type or body fields
  kNeedsConcreteAddress,  // 422 UNPROCESSABLE: a valid pattern where one address is needed
  kPayloadTooLarge,       // 413 PAYLOAD_TOO_LARGE: content over ucxl.max_content_bytes
  kAlreadyDeleted,        // 409 CONFLICT: delete of an address whose latest version is a tombstone
  kResolutionFailed,      // 404 RESOLUTION_FAILED: other nodes could not be reached for a read
};

const ErrorCategory& Category();
inline std::error_code make_error_code(Errc e) { return {static_cast<int>(e), Category()}; }

struct UcxlCode {
  int status;             // HTTP status and the code's number
  std::string_view name;  // "CONFLICT"
};

// The code of a failed Status: its UCXL reason when it has one, else by its
// generic code (InvalidArgument 400 BAD_REQUEST, Unauthenticated 401
// UNAUTHORIZED, PermissionDenied 403 FORBIDDEN, NotFound 404 NOT_FOUND,
// AlreadyExists/Conflict 409 CONFLICT, ResourceExhausted 429 RATE_LIMITED,
// FailedPrecondition/Unavailable/Timeout 503 SERVICE_UNAVAILABLE, else 500
// INTERNAL).
UcxlCode UcxlCodeOf(const Status& status);
// The name of the code the UCXI envelope uses for an HTTP status the server
// itself answers (401, 405, 413, 429, ...).
std::string_view UcxlNameOfHttpStatus(int status);

}  // namespace bzzz::ucxl

template <>
struct std::is_error_code_enum<bzzz::ucxl::Errc> : std::true_type {};
