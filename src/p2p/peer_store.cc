#include "p2p/peer_store.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

#include "base/file.h"
#include "base/hex.h"
#include "base/log.h"

namespace bzzz::p2p::internal {

namespace {

constexpr SubsystemLog kLog{"p2p"};

// An IP literal and a port (never a host name: reading the file must not
// resolve anything).
bool ParseAddress(const std::string& ip, const std::string& port_text, dht::NodeExport* e) {
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 || port > 65535) return false;
  std::memset(&e->ss, 0, sizeof e->ss);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&e->ss);
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(port));
    e->sslen = sizeof(sockaddr_in);
    return true;
  }
  std::memset(&e->ss, 0, sizeof e->ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&e->ss);
  if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(port));
    e->sslen = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

}  // namespace

std::string FormatPeerStore(const std::vector<dht::NodeExport>& nodes) {
  std::ostringstream out;
  for (const auto& n : nodes) {
    char ip[INET6_ADDRSTRLEN] = {};
    std::uint16_t port = 0;
    if (n.ss.ss_family == AF_INET && n.sslen >= sizeof(sockaddr_in)) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(&n.ss);
      inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
      port = ntohs(a->sin_port);
    } else if (n.ss.ss_family == AF_INET6 && n.sslen >= sizeof(sockaddr_in6)) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(&n.ss);
      inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
      port = ntohs(a->sin6_port);
    } else {
      continue;
    }
    out << n.id.toString() << ' ' << ip << ' ' << port << '\n';
  }
  return out.str();
}

std::vector<dht::NodeExport> ParsePeerStore(std::string_view text, int* bad) {
  std::vector<dht::NodeExport> nodes;
  std::istringstream in{std::string(text)};
  std::string line;
  *bad = 0;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, host, port, extra;
    dht::NodeExport e;
    if (!(fields >> id >> host >> port) || (fields >> extra) || !IsLowerHex(id, 40) || !ParseAddress(host, port, &e)) {
      ++*bad;
      continue;
    }
    e.id = dht::InfoHash(id);
    nodes.push_back(e);
  }
  return nodes;
}

std::vector<dht::NodeExport> LoadPeerStore(const std::string& path) {
  if (path.empty()) return {};
  std::ifstream in(path);
  if (!in) return {};
  std::stringstream text;
  text << in.rdbuf();
  int bad = 0;
  auto nodes = ParsePeerStore(text.str(), &bad);
  if (bad) kLog.warn("p2p: ignored {} unreadable line(s) in {} (bzzz p2p peers clear resets it)", bad, path);
  return nodes;
}

Status SavePeerStore(const std::string& path, const std::vector<dht::NodeExport>& nodes) {
  return WriteFileAtomic(path, FormatPeerStore(nodes), 0600);
}

}  // namespace bzzz::p2p::internal
