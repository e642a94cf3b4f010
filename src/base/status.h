// Status and Result: errors as values.
//
// Every fallible operation in bzzz returns a Status (or a Result<T>, a value
// or a Status). "Not found" is distinct from "failed". A Status is a small
// value type, cheap to copy and safe to pass between threads.
//
// A Status has a generic code (what a caller may do about it: retry, fix
// the input, ...) and may carry a subsystem's precise reason, a
// std::error_code of that subsystem's enum (base/errc.h; ucxl/errc.h is an
// example). Boundaries map reasons to wire codes in one place each
// (http::HttpStatusOf, ucxl::UcxlCodeOf), never by parsing messages.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>

namespace bzzz {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // the caller's input is wrong; retrying will not help
  kNotFound,            // the thing asked for does not exist
  kAlreadyExists,       // create of something that exists
  kConflict,            // state does not allow the operation (e.g. second shutdown)
  kFailedPrecondition,  // system is not in a state to do this (e.g. not migrated)
  kUnavailable,         // a dependency is down; retrying later may help
  kTimeout,             // the operation did not finish in time
  kPermissionDenied,    // identity known, permission missing
  kUnauthenticated,     // no valid identity
  kResourceExhausted,   // a bounded queue or quota is full; retry later (429)
  kInternal,            // a bug or an unexpected failure of a dependency
};

// Stable lower-case name of a code ("not_found"), used in logs and JSON.
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  Status(StatusCode code, std::string message, std::error_code reason)
      : code_(code), message_(std::move(message)), reason_(reason) {}

  static Status Ok() { return {}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  bool IsNotFound() const { return code_ == StatusCode::kNotFound; }
  // The subsystem's reason; empty (value 0) when none was given.
  const std::error_code& reason() const { return reason_; }

  // "not_found: no such check 'foo'" (or "ok").
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  std::error_code reason_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status Conflict(std::string m) { return {StatusCode::kConflict, std::move(m)}; }
inline Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status Timeout(std::string m) { return {StatusCode::kTimeout, std::move(m)}; }
inline Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// A value of type T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace bzzz
