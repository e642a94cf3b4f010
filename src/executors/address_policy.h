// AddressPolicy: which addresses the `http` executor may connect to, so a
// task cannot use the node to reach what only the node can reach (server-
// side request forgery): loopback, link-local (cloud metadata services),
// private and shared ranges, multicast and broadcast, unspecified, and every
// address of the node's own interfaces are refused unless agents.http.allow
// names the URL's host or a CIDR containing the address.
//
// The check runs on the address libcurl is about to connect to (after its
// own resolution), so a name that resolves differently on a second lookup
// (DNS rebinding) gains nothing. IPv4-mapped IPv6 addresses are judged as
// the IPv4 address they carry.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace bzzz::executors {

class AddressPolicy {
 public:
  // `allow`: host names (compared case-insensitively with the URL's host)
  // and CIDRs ("10.1.2.0/24", "fd00::/8", or a bare address). InvalidArgument
  // for an entry that is neither.
  static Result<AddressPolicy> Make(const std::vector<std::string>& allow);

  // "" when `ip` (text form) may be reached for a URL whose host is `host`;
  // else why not.
  std::string Check(std::string_view host, std::string_view ip) const;

 private:
  struct Cidr {
    bool v6 = false;
    std::uint8_t bytes[16] = {};
    int prefix = 0;
  };
  static bool Parse(std::string_view text, Cidr* out);
  static bool Contains(const Cidr& net, const Cidr& addr);

  std::vector<std::string> hosts_;
  std::vector<Cidr> nets_;
};

}  // namespace bzzz::executors
