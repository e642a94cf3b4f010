#include "ucxl/errc.h"

#include <string>

namespace bzzz::ucxl {
namespace {

UcxlCode CodeOf(Errc e) {
  switch (e) {
    case Errc::kInvalidAddress:
      return {400, "INVALID_ADDRESS"};
    case Errc::kTemporalInvalid:
      return {400, "TEMPORAL_INVALID"};
    case Errc::kInvalidPayload:
      return {400, "INVALID_PAYLOAD"};
    case Errc::kNeedsConcreteAddress:
      return {422, "UNPROCESSABLE"};
    case Errc::kPayloadTooLarge:
      return {413, "PAYLOAD_TOO_LARGE"};
    case Errc::kAlreadyDeleted:
      return {409, "CONFLICT"};
    case Errc::kResolutionFailed:
      return {404, "RESOLUTION_FAILED"};
  }
  return {500, "INTERNAL"};
}

class UcxlCategory final : public ErrorCategory {
 public:
  const char* name() const noexcept override { return "ucxl"; }
  std::string message(int value) const override { return std::string(CodeOf(static_cast<Errc>(value)).name); }
  StatusCode Generic(int value) const override {
    switch (static_cast<Errc>(value)) {
      case Errc::kInvalidAddress:
      case Errc::kInvalidPayload:
      case Errc::kNeedsConcreteAddress:
        return StatusCode::kInvalidArgument;
      case Errc::kTemporalInvalid:
        return StatusCode::kFailedPrecondition;
      case Errc::kPayloadTooLarge:
        return StatusCode::kResourceExhausted;
      case Errc::kAlreadyDeleted:
        return StatusCode::kConflict;
      case Errc::kResolutionFailed:
        return StatusCode::kUnavailable;
    }
    return StatusCode::kInternal;
  }
  int HttpStatus(int value) const override { return CodeOf(static_cast<Errc>(value)).status; }
};

}  // namespace

const ErrorCategory& Category() {
  static const UcxlCategory kCategory;
  return kCategory;
}

UcxlCode UcxlCodeOf(const Status& status) {
  if (status.reason().category() == Category()) return CodeOf(static_cast<Errc>(status.reason().value()));
  switch (status.code()) {
    case StatusCode::kOk:
      return {200, "SUCCESS"};
    case StatusCode::kInvalidArgument:
      return {400, "BAD_REQUEST"};
    case StatusCode::kUnauthenticated:
      return {401, "UNAUTHORIZED"};
    case StatusCode::kPermissionDenied:
      return {403, "FORBIDDEN"};
    case StatusCode::kNotFound:
      return {404, "NOT_FOUND"};
    case StatusCode::kAlreadyExists:
    case StatusCode::kConflict:
      return {409, "CONFLICT"};
    case StatusCode::kResourceExhausted:
      return {429, "RATE_LIMITED"};
    case StatusCode::kFailedPrecondition:
    case StatusCode::kUnavailable:
    case StatusCode::kTimeout:
      return {503, "SERVICE_UNAVAILABLE"};
    case StatusCode::kInternal:
      break;
  }
  return {500, "INTERNAL"};
}

std::string_view UcxlNameOfHttpStatus(int status) {
  switch (status) {
    case 400:
      return "BAD_REQUEST";
    case 401:
      return "UNAUTHORIZED";
    case 403:
      return "FORBIDDEN";
    case 404:
      return "NOT_FOUND";
    case 405:
      return "METHOD_NOT_ALLOWED";
    case 409:
      return "CONFLICT";
    case 413:
      return "PAYLOAD_TOO_LARGE";
    case 422:
      return "UNPROCESSABLE";
    case 429:
      return "RATE_LIMITED";
    case 503:
      return "SERVICE_UNAVAILABLE";
    default:
      return "INTERNAL";
  }
}

}  // namespace bzzz::ucxl
