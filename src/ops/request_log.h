// RequestLog: the most recent requests, for GET /debug/requests.
//
// A fixed-size ring buffer: memory stays bounded whatever the traffic.
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "http/message.h"

namespace bzzz::ops {

struct RequestEntry {
  std::chrono::system_clock::time_point time;
  std::string method;
  std::string route;
  std::string path;
  int status = 0;
  double duration_ms = 0;
  std::string request_id;
  std::string principal;
  std::string remote_address;
  std::size_t response_bytes = 0;
};

class RequestLog {
 public:
  explicit RequestLog(std::size_t capacity);

  void Record(const http::RequestRecord& record);
  // Newest first, at most `limit` entries.
  std::vector<RequestEntry> Recent(std::size_t limit) const;
  std::size_t capacity() const { return ring_.size(); }
  std::uint64_t total() const;

 private:
  mutable std::mutex mu_;
  std::vector<RequestEntry> ring_;
  std::uint64_t next_ = 0;  // total recorded; next slot is next_ % capacity
};

}  // namespace bzzz::ops
