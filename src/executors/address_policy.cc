#include "executors/address_policy.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace bzzz::executors {

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

struct Range {
  const char* cidr;
  const char* what;
};

// Never reachable by a task unless allowed.
constexpr Range kDenied[] = {
    {"0.0.0.0/8", "unspecified"},         {"10.0.0.0/8", "private"},
    {"100.64.0.0/10", "shared (CGNAT)"},  {"127.0.0.0/8", "loopback"},
    {"169.254.0.0/16", "link-local"},     {"172.16.0.0/12", "private"},
    {"192.0.0.0/24", "IETF protocol"},    {"192.168.0.0/16", "private"},
    {"198.18.0.0/15", "benchmarking"},    {"224.0.0.0/4", "multicast"},
    {"240.0.0.0/4", "reserved"},          {"::/128", "unspecified"},
    {"::1/128", "loopback"},              {"fc00::/7", "unique local"},
    {"fe80::/10", "link-local"},          {"ff00::/8", "multicast"},
    {"64:ff9b::/96", "NAT64"},
};

}  // namespace

bool AddressPolicy::Parse(std::string_view text, Cidr* out) {
  std::string addr(text);
  int prefix = -1;
  if (const auto slash = addr.find('/'); slash != std::string::npos) {
    const std::string p = addr.substr(slash + 1);
    if (p.empty() || p.size() > 3 || !std::all_of(p.begin(), p.end(), ::isdigit)) return false;
    prefix = std::stoi(p);
    addr.resize(slash);
  }
  Cidr c;
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, addr.c_str(), &v4) == 1) {
    std::memcpy(c.bytes, &v4, 4);
    c.prefix = prefix < 0 ? 32 : prefix;
    if (c.prefix > 32) return false;
  } else if (inet_pton(AF_INET6, addr.c_str(), &v6) == 1) {
    c.v6 = true;
    std::memcpy(c.bytes, &v6, 16);
    c.prefix = prefix < 0 ? 128 : prefix;
    if (c.prefix > 128) return false;
    // An IPv4-mapped address (::ffff:a.b.c.d) is the IPv4 address.
    static const std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (prefix < 0 && std::memcmp(c.bytes, kMapped, 12) == 0) {
      c.v6 = false;
      std::memmove(c.bytes, c.bytes + 12, 4);
      c.prefix = 32;
    }
  } else {
    return false;
  }
  *out = c;
  return true;
}

bool AddressPolicy::Contains(const Cidr& net, const Cidr& addr) {
  if (net.v6 != addr.v6) return false;
  const int full = net.prefix / 8, rest = net.prefix % 8;
  if (std::memcmp(net.bytes, addr.bytes, static_cast<std::size_t>(full)) != 0) return false;
  if (rest == 0) return true;
  const std::uint8_t mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (net.bytes[full] & mask) == (addr.bytes[full] & mask);
}

Result<AddressPolicy> AddressPolicy::Make(const std::vector<std::string>& allow) {
  AddressPolicy p;
  for (const auto& entry : allow) {
    Cidr c;
    if (Parse(entry, &c)) {
      p.nets_.push_back(c);
      continue;
    }
    const bool host_name = !entry.empty() && entry.size() <= 253 &&
                           std::all_of(entry.begin(), entry.end(), [](unsigned char ch) {
                             return std::isalnum(ch) || ch == '-' || ch == '.';
                           });
    if (!host_name) return InvalidArgument("agents.http.allow: \"" + entry + "\" is neither a host name nor a CIDR");
    p.hosts_.push_back(Lower(entry));
  }
  return p;
}

std::string AddressPolicy::Check(std::string_view host, std::string_view ip) const {
  Cidr addr;
  if (!Parse(ip, &addr)) return "not an IP address: " + std::string(ip);
  if (std::find(hosts_.begin(), hosts_.end(), Lower(host)) != hosts_.end()) return "";
  for (const auto& net : nets_) {
    if (Contains(net, addr)) return "";
  }
  for (const auto& r : kDenied) {
    Cidr net;
    if (Parse(r.cidr, &net) && Contains(net, addr)) {
      return std::string(ip) + " is a " + r.what + " address (agents.http.allow lists what tasks may reach)";
    }
  }
  // The node's own addresses, whatever their range.
  ifaddrs* list = nullptr;
  std::string why;
  if (getifaddrs(&list) == 0) {
    for (ifaddrs* i = list; i != nullptr && why.empty(); i = i->ifa_next) {
      if (i->ifa_addr == nullptr) continue;
      Cidr own;
      own.prefix = 0;
      if (i->ifa_addr->sa_family == AF_INET) {
        std::memcpy(own.bytes, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, 4);
        own.prefix = 32;
      } else if (i->ifa_addr->sa_family == AF_INET6) {
        own.v6 = true;
        std::memcpy(own.bytes, &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, 16);
        own.prefix = 128;
      } else {
        continue;
      }
      if (Contains(own, addr)) why = std::string(ip) + " is an address of this node";
    }
    freeifaddrs(list);
  }
  return why;
}

}  // namespace bzzz::executors
