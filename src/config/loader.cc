// The configuration loader is driven by one declarative table (Schema()):
// every key appears there exactly once with its type, range, environment
// names, nO alias and accessor into Config. Loading a file, applying the
// environment and flags, rendering and DescribeKeys all walk that table, so a
// new key is added in one place and cannot be half supported.
#include "config/loader.h"

#include "base/hex.h"
#include "base/log.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string_view>
#include <system_error>
#include <variant>

extern char** environ;  // NOLINT: POSIX, declared by no standard header

namespace bzzz::config {

std::string ConfigIssue::ToString() const {
  if (path.empty()) return source + ": " + message;
  return path + " (" + source + "): " + message;
}

namespace {

using Json = nlohmann::ordered_json;  // ordered: rendered sections keep schema order

// ---------------------------------------------------------------------------
// The schema
// ---------------------------------------------------------------------------

// A pointer to one field of a Config; the alternative tells the C++ type.
using FieldRef =
    std::variant<std::string*, int*, std::uint32_t*, double*, bool*, Millis*, std::size_t*,
                 std::vector<std::string>*, std::vector<ApiToken>*, std::vector<RoleDefinition>*>;
using Accessor = FieldRef (*)(Config&);

// The configuration type of a key: the C++ type plus how its text is read.
enum class Kind {
  kString,
  kEnum,  // string restricted to `choices`, matched case-insensitively
  kInt,
  kUint32,
  kDouble,
  kBool,
  kDuration,  // Millis: integer milliseconds or "250ms", "5s", "2m", "1h"
  kSize,      // std::size_t bytes: integer or "512KiB", "1MiB", "4MB"
  kCount,     // std::size_t count: a plain non-negative integer
  kStringList,
  kEnumList,   // list of strings restricted to `choices`, no duplicates
  kApiTokens,  // file (or flag) only: list of {name, token_hash (or token_sha256), roles}
  kRoles,      // file (or flag) only: list of {name, permissions}
};

// A format rule for a string value or a list item: what is wrong, or "" when fine.
using StringCheck = std::string (*)(std::string_view value);

struct KeyDef {
  std::string path;  // canonical dotted path, e.g. "agents.autoscaling.min_agents"
  Accessor field = nullptr;
  std::string description;
  Kind kind = Kind::kString;
  std::optional<double> min;
  std::optional<double> max;
  bool min_exclusive = false;  // (min, max] instead of [min, max]
  std::string range_note;      // why the range is what it is, shown in errors
  std::vector<std::string> choices;
  StringCheck check = nullptr;  // for strings and list items
  bool secret = false;
  std::vector<std::string> env;  // highest precedence first; the BZZZ_* name leads
  std::string file_alias;        // nO operational.json name, e.g. performance.autoscaling.minAgents

  KeyDef& Range(double lo, double hi) {
    min = lo;
    max = hi;
    return *this;
  }
  KeyDef& Min(double lo) {
    min = lo;
    return *this;
  }
  // Strictly greater than lo: (lo, hi] ranges such as percentages and ratios.
  KeyDef& Above(double lo, double hi) {
    min = lo;
    max = hi;
    min_exclusive = true;
    return *this;
  }
  // Durations where zero makes no sense (timeouts, intervals).
  KeyDef& Positive() { return Min(1); }
  KeyDef& Note(std::string note) {
    range_note = std::move(note);
    return *this;
  }
  KeyDef& OneOf(std::initializer_list<const char*> values) {
    choices.assign(values.begin(), values.end());
    kind = kind == Kind::kStringList ? Kind::kEnumList : Kind::kEnum;
    return *this;
  }
  KeyDef& Bytes() {
    kind = Kind::kSize;
    return *this;
  }
  KeyDef& Check(StringCheck fn) {
    check = fn;
    return *this;
  }
  KeyDef& Secret() {
    secret = true;
    return *this;
  }
  // Extra environment names, in decreasing precedence, all below the BZZZ_* name.
  KeyDef& Env(std::initializer_list<const char*> names) {
    env.insert(env.end(), names.begin(), names.end());
    return *this;
  }
  KeyDef& Alias(std::string path_alias) {
    file_alias = std::move(path_alias);
    return *this;
  }
};

std::string CanonicalEnvName(std::string_view path) {
  std::string name = "BZZZ_";
  for (char c : path) name += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

KeyDef Key(std::string path, Accessor field, std::string description) {
  KeyDef key;
  Config probe;
  switch (field(probe).index()) {
    case 0:
      key.kind = Kind::kString;
      break;
    case 1:
      key.kind = Kind::kInt;
      break;
    case 2:
      key.kind = Kind::kUint32;
      break;
    case 3:
      key.kind = Kind::kDouble;
      break;
    case 4:
      key.kind = Kind::kBool;
      break;
    case 5:
      key.kind = Kind::kDuration;
      break;
    case 6:
      key.kind = Kind::kCount;
      break;
    case 7:
      key.kind = Kind::kStringList;
      break;
    case 8:
      key.kind = Kind::kApiTokens;
      break;
    default:
      key.kind = Kind::kRoles;
      break;
  }
  // Lists of objects do not fit in one environment variable; they come from the file or a flag.
  if (key.kind != Kind::kApiTokens && key.kind != Kind::kRoles) key.env.push_back(CanonicalEnvName(path));
  key.path = std::move(path);
  key.field = field;
  key.description = std::move(description);
  return key;
}

// --- String format rules ----------------------------------------------------

std::string Quote(std::string_view text) {
  return Json(std::string(text)).dump(-1, ' ', false, Json::error_handler_t::replace);
}

bool IsIdentifier(std::string_view s) {  // [A-Za-z0-9_-]+
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

std::string CheckNonEmpty(std::string_view value) { return value.empty() ? "must not be empty" : ""; }

std::string CheckIpAddress(std::string_view item) {
  const std::string s(item);
  unsigned char buf[16];
  if (inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1) return "";
  return "not an IP address";
}

std::string CheckRoleMapping(std::string_view item) {
  const auto eq = item.find('=');
  if (eq == std::string_view::npos || eq == 0 || eq + 1 == item.size()) {
    return "expected <claim value>=<role>, e.g. bzzz-admins=system_admin";
  }
  return "";
}

// An item of security.shhh.patterns: name=regex, the regex ECMAScript,
// compiled here so that a bad one stops the start with its name.
std::string CheckRedactionPattern(std::string_view item) {
  const auto eq = item.find('=');
  if (eq == std::string_view::npos || eq == 0 || eq + 1 == item.size()) {
    return "expected <name>=<regular expression>, e.g. corp-key=CORP-[0-9A-F]{16}";
  }
  if (item.size() > 512) return "a pattern of at most 512 characters";
  try {
    const std::regex re(std::string(item.substr(eq + 1)), std::regex::ECMAScript);
    if (std::regex_match(std::string(), re)) return "the pattern matches the empty string";
  } catch (const std::regex_error& e) {
    return std::string("not a valid regular expression: ") + e.what();
  }
  return "";
}

bool IsRoleName(std::string_view role) {
  if (role.empty() || role.size() > 64 || role == "any") return false;
  return std::all_of(role.begin(), role.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

// An item of security.keys.roles.
std::string CheckKeyRoleName(std::string_view item) {
  return IsRoleName(item) ? "" : "a role name: 1 to 64 letters, digits, '_' or '-' (not any)";
}

// An item of security.keys.readers: "<ucxl pattern> = role[,role...]". The
// pattern is parsed when the node starts (src/ucxl/role_codec.h).
std::string CheckReaderRule(std::string_view item) {
  const auto eq = item.rfind('=');
  if (eq == std::string_view::npos || item.rfind("ucxl://", 0) != 0) {
    return "expected '<ucxl pattern> = role[,role...]', e.g. 'ucxl://any:any@secret:any/*^ = decision'";
  }
  std::string_view list = item.substr(eq + 1);
  while (true) {
    const auto comma = list.find(',');
    std::string_view role = list.substr(0, comma);
    while (!role.empty() && role.front() == ' ') role.remove_prefix(1);
    while (!role.empty() && role.back() == ' ') role.remove_suffix(1);
    if (!IsRoleName(role)) return "role '" + std::string(role) + "' is not a role name";
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return "";
}

std::string CheckHostPort(std::string_view value) {
  std::string error = "expected HOST:PORT with a port in 1..65535 (IPv6 as [::1]:9000), got " + Quote(value);
  std::string_view host;
  std::string_view port;
  if (!value.empty() && value.front() == '[') {
    std::size_t close = value.find(']');
    if (close == std::string_view::npos || close + 1 >= value.size() || value[close + 1] != ':') return error;
    host = value.substr(1, close - 1);
    port = value.substr(close + 2);
    bool ipv6_chars = std::all_of(host.begin(), host.end(), [](char c) {
      return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.' || c == '%';
    });
    if (host.find(':') == std::string_view::npos || !ipv6_chars) return error;
  } else {
    std::size_t colon = value.rfind(':');
    if (colon == std::string_view::npos) return error;
    host = value.substr(0, colon);
    port = value.substr(colon + 1);
    // A bare IPv6 address is ambiguous ("::1:9000"); require brackets.
    bool name_chars = std::all_of(host.begin(), host.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
    });
    if (!name_chars) return error;
  }
  if (host.empty() || port.empty() || port.size() > 5) return error;
  int number = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (ec != std::errc() || end != port.data() + port.size() || number < 1 || number > 65535) return error;
  return "";
}

// Like CheckHostPort, but port 0 ("any free port") is allowed.
std::string CheckBindHostPort(std::string_view value) {
  if (value.size() > 2 && value.substr(value.size() - 2) == ":0") {
    std::string with_port(value.substr(0, value.size() - 1));
    with_port += "1";
    return CheckHostPort(with_port).empty() ? "" : CheckHostPort(value);
  }
  return CheckHostPort(value);
}

// A host name, an IP address, or a CIDR (agents.http.allow).
std::string CheckHostOrCidr(std::string_view value) {
  const std::string error = "expected a host name, an IP address or a CIDR (10.0.0.0/8, fd00::/8), got " + Quote(value);
  std::string addr(value);
  int max_prefix = -1;
  std::string prefix;
  if (const auto slash = addr.find('/'); slash != std::string::npos) {
    prefix = addr.substr(slash + 1);
    addr.resize(slash);
  }
  unsigned char buf[16];
  if (inet_pton(AF_INET, addr.c_str(), buf) == 1) max_prefix = 32;
  if (inet_pton(AF_INET6, addr.c_str(), buf) == 1) max_prefix = 128;
  if (max_prefix < 0) {
    const bool name = !value.empty() && value.size() <= 253 && prefix.empty() &&
                      std::all_of(value.begin(), value.end(), [](unsigned char c) {
                        return std::isalnum(c) || c == '-' || c == '.';
                      });
    return name ? "" : error;
  }
  if (prefix.empty()) return "";
  int bits = -1;
  auto [end, ec] = std::from_chars(prefix.data(), prefix.data() + prefix.size(), bits);
  if (ec != std::errc() || end != prefix.data() + prefix.size() || bits < 0 || bits > max_prefix) return error;
  return "";
}

std::string CheckOptionalHostPort(std::string_view value) {
  return value.empty() ? "" : CheckHostPort(value);
}

std::string CheckOptionalUrl(std::string_view value) {
  if (value.empty()) return "";
  for (std::string_view scheme : {"http://", "https://"}) {
    if (value.size() > scheme.size() && value.substr(0, scheme.size()) == scheme) return "";
  }
  return "expected an http:// or https:// URL, got " + Quote(value);
}

std::string CheckIdentifier(std::string_view value) {
  return IsIdentifier(value) ? "" : "expected a name of letters, digits, '_' and '-', got " + Quote(value);
}

// "resource:action" with each part [a-z0-9_-]+ or "*"; or "*" alone.
std::string CheckPermission(std::string_view value) {
  auto part_ok = [](std::string_view part) {
    return part == "*" || (!part.empty() && std::all_of(part.begin(), part.end(), [](char c) {
             return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
           }));
  };
  if (value == "*") return "";
  std::size_t colon = value.find(':');
  if (colon != std::string_view::npos && part_ok(value.substr(0, colon)) &&
      part_ok(value.substr(colon + 1))) {
    return "";
  }
  return "expected a permission \"resource:action\" (each [a-z0-9_-]+ or \"*\") or \"*\", got " +
         Quote(value);
}

#define BZZZ_FIELD(member) [](Config& c) -> FieldRef { return &c.member; }

std::vector<KeyDef> BuildKeys() {
  constexpr double kKiB = 1024;
  constexpr double kGiB = 1024.0 * 1024 * 1024;
  return {
      // node
      Key("node.name", BZZZ_FIELD(node.name), "Human-readable node name; empty means the host name."),
      Key("node.data_dir", BZZZ_FIELD(node.data_dir),
          "Directory holding everything the node writes (identity, DHT cache, peer store, database).")
          .Check(CheckNonEmpty)
          .Env({"BZZZ_DATA_DIR"}),
      Key("node.role", BZZZ_FIELD(node.role), "Agent role this node plays (e.g. agent, backend_developer).")
          .Check(CheckNonEmpty),
      Key("node.environment", BZZZ_FIELD(node.environment),
          "Deployment environment name (production, staging, development).")
          .Env({"NODE_ENV"}),
      Key("node.capabilities", BZZZ_FIELD(node.capabilities),
          "Capabilities this node advertises for task matching."),
      Key("node.log_level", BZZZ_FIELD(node.log_level), "Minimum level of log messages written.")
          .OneOf({"trace", "debug", "info", "warn", "error", "critical", "off"})
          .Env({"BZZZ_LOG_LEVEL", "LOG_LEVEL"}),
      Key("node.log_levels", BZZZ_FIELD(node.log_levels),
          "Levels of single subsystems, overriding node.log_level for their lines: items "
          "<subsystem>=<level>, e.g. p2p=debug or dht=warn. Subsystems: cluster, dht, election, executors, http, "
          "node, ops, p2p, security, storage, tasks, ucxl.")
          .Check(CheckLoggerLevel)
          .Env({"BZZZ_LOG_LEVELS"}),
      Key("node.log_format", BZZZ_FIELD(node.log_format),
          "Log line format: human-readable text or JSON lines.")
          .OneOf({"text", "json"})
          .Env({"BZZZ_LOG_FORMAT"}),
      Key("node.json_max_depth", BZZZ_FIELD(node.json_max_depth),
          "Deepest nesting of arrays and objects in any JSON the node parses from outside (request bodies, P2P "
          "messages, DHT records, answers of webhooks and LLM servers); deeper input is refused (400 on the API) "
          "before anything is stored.")
          .Range(4, 1000),
      Key("node.json_max_elements", BZZZ_FIELD(node.json_max_elements),
          "Most values in one JSON text from outside (containers plus separators); more is refused like too deep.")
          .Range(16, 100000000),

      // http
      Key("http.host", BZZZ_FIELD(http.host), "Address the HTTP API listens on.")
          .Check(CheckNonEmpty)
          .Env({"NO_SERVICE_HOST"}),
      Key("http.port", BZZZ_FIELD(http.port), "TCP port of the HTTP API; 0 picks a free port.")
          .Range(0, 65535)
          .Env({"NO_SERVICE_PORT"}),
      Key("http.threads", BZZZ_FIELD(http.threads), "HTTP I/O threads; 0 means half the hardware threads (at least two), leaving the rest to agents and the DHT.")
          .Range(0, 256),
      Key("http.body_limit_bytes", BZZZ_FIELD(http.body_limit_bytes),
          "Largest accepted request body; larger bodies get 413.")
          .Bytes()
          .Range(kKiB, kGiB),
      Key("http.read_timeout", BZZZ_FIELD(http.read_timeout), "Time allowed to receive a request body and to write a response.")
          .Positive(),
      Key("http.keepalive_timeout", BZZZ_FIELD(http.keepalive_timeout),
          "Time an idle connection may wait for the first byte of its next request.")
          .Positive(),
      Key("http.header_timeout", BZZZ_FIELD(http.header_timeout),
          "Time from the first byte of a request to the end of its headers; a client that trickles its "
          "headers is cut off here.")
          .Positive(),
      Key("http.max_connections", BZZZ_FIELD(http.max_connections),
          "Most simultaneous client connections; further ones are closed at once.")
          .Min(1),
      Key("http.max_connections_per_client", BZZZ_FIELD(http.max_connections_per_client),
          "Most simultaneous connections from one client address; further ones are closed at once, so one "
          "client cannot hold every slot.")
          .Min(1),
      Key("http.access_log", BZZZ_FIELD(http.access_log), "Log one line per HTTP request."),
      Key("http.health_listen", BZZZ_FIELD(http.health_listen),
          "Optional separate HOST:PORT serving only the health probes; empty disables it.")
          .Check(CheckOptionalHostPort),

      // p2p
      Key("p2p.listen", BZZZ_FIELD(p2p.listen),
          "HOST:PORT (UDP) the OpenDHT node binds to; loopback by default; port 0 picks a free port.")
          .Check(CheckBindHostPort),
      Key("p2p.bootstrap", BZZZ_FIELD(p2p.bootstrap),
          "HOST:PORT of peers to bootstrap from; never a public bootstrap by default.")
          .Check(CheckHostPort),
      Key("p2p.network_id", BZZZ_FIELD(p2p.network_id),
          "OpenDHT network id; 0 derives it from the cluster key (the default). Membership is checked either way.")
          .Range(0, std::numeric_limits<std::uint32_t>::max())
          .Note("never the public OpenDHT network: 0 means derived, not public"),
      Key("p2p.join_token", BZZZ_FIELD(p2p.join_token),
          "Join token of an existing cluster (bzzz cluster token create); used once, on first start, to be admitted.")
          .Env({"BZZZ_JOIN_TOKEN"})
          .Secret(),
      Key("p2p.join_timeout", BZZZ_FIELD(p2p.join_timeout),
          "How long a joining node waits for the cluster's admin to admit it before giving up.")
          .Positive(),
      Key("p2p.credential_ttl", BZZZ_FIELD(p2p.credential_ttl),
          "Validity of the membership credentials this node issues; members renew theirs after two thirds of it.")
          .Positive(),
      Key("p2p.multicast_discovery", BZZZ_FIELD(p2p.multicast_discovery),
          "Discover peers on the local network by multicast."),
      Key("p2p.presence_interval", BZZZ_FIELD(p2p.presence_interval),
          "How often the node announces its presence and availability.")
          .Positive(),
      Key("p2p.peer_expiry", BZZZ_FIELD(p2p.peer_expiry),
          "A peer not heard from for this long is considered gone.")
          .Positive(),
      Key("p2p.max_peer_requests_per_sec", BZZZ_FIELD(p2p.max_peer_requests_per_sec),
          "OpenDHT requests accepted per second from one IP address; 0 keeps OpenDHT's default, -1 is unlimited (for clusters on one host).")
          .Range(-1, 10000000),
      Key("p2p.max_requests_per_sec", BZZZ_FIELD(p2p.max_requests_per_sec),
          "OpenDHT requests accepted per second in all; 0 keeps OpenDHT's default, -1 is unlimited.")
          .Range(-1, 100000000),
      Key("p2p.max_store_bytes", BZZZ_FIELD(p2p.max_store_bytes),
          "Bytes of DHT values this node stores for the network; pubsub needs at least message rate x size x retention.")
          .Bytes()
          .Range(1 << 20, 2.0 * (1ull << 30))
          .Note("OpenDHT keeps the limit in 32 bits"),
      Key("p2p.pubsub.queue_capacity", BZZZ_FIELD(p2p.pubsub.queue_capacity),
          "Messages held for sending, and for delivery to each subscriber; beyond it messages are dropped and counted.")
          .Range(16, 10000000),
      Key("p2p.pubsub.batch_max_messages", BZZZ_FIELD(p2p.pubsub.batch_max_messages),
          "Most messages packed into one signed frame when messages queue up (the runbook's message batch size); 1 disables batching.")
          .Range(1, 4096),
      Key("p2p.pubsub.batch_max_bytes", BZZZ_FIELD(p2p.pubsub.batch_max_bytes),
          "Most payload bytes packed into one frame.")
          .Bytes()
          .Range(1024, 60 * 1024),
      Key("p2p.pubsub.max_inflight_frames", BZZZ_FIELD(p2p.pubsub.max_inflight_frames),
          "Frames that may await their storage acknowledgement; past it publishing waits (flow control).")
          .Range(1, 4096),
      Key("p2p.pubsub.batch_linger_us", BZZZ_FIELD(p2p.pubsub.batch_linger_us),
          "Microseconds the publisher lets messages gather after a frame went out before it packs the next (0: at once); bounds frames per second under load.")
          .Range(0, 100000),
      Key("p2p.pubsub.mesh_degree", BZZZ_FIELD(p2p.pubsub.mesh_degree),
          "Member links a frame is pushed to per topic; with more subscribed peers a frame goes to this many, flagged for forwarding.")
          .Range(1, 64),
      Key("p2p.pubsub.link_buffer_bytes", BZZZ_FIELD(p2p.pubsub.link_buffer_bytes),
          "Outgoing bytes held per member link; past it the publisher waits up to 1 s, then drops the frame for that link (counted link_full).")
          .Bytes()
          .Range(64 * 1024, 1ull << 30),
      Key("p2p.pubsub.dht_copy", BZZZ_FIELD(p2p.pubsub.dht_copy),
          "Put every pubsub frame into the DHT as well (retention, replay for late subscribers); by default only while some live member has no link."),
      Key("p2p.pubsub.dedup_window", BZZZ_FIELD(p2p.pubsub.dedup_window),
          "Recent frames remembered per sender to suppress duplicates.")
          .Range(64, 1000000),
      Key("p2p.retention.coordination", BZZZ_FIELD(p2p.retention.coordination),
          "How long the DHT retains messages of bzzz/coordination/v1.")
          .Positive(),
      Key("p2p.retention.meta_discussion", BZZZ_FIELD(p2p.retention.meta_discussion),
          "How long the DHT retains messages of hmmm/meta-discussion/v1.")
          .Positive(),
      Key("p2p.retention.issue", BZZZ_FIELD(p2p.retention.issue),
          "How long the DHT retains messages of the per-task rooms bzzz/meta/issue/<id>.")
          .Positive(),
      Key("p2p.retention.election", BZZZ_FIELD(p2p.retention.election),
          "How long the DHT retains election messages.")
          .Positive(),
      Key("p2p.retention.slurp", BZZZ_FIELD(p2p.retention.slurp),
          "How long the DHT retains SLURP messages.")
          .Positive(),
      Key("p2p.retention.internal", BZZZ_FIELD(p2p.retention.internal),
          "How long the DHT retains probes and other internal messages.")
          .Positive(),
      Key("p2p.retention.direct", BZZZ_FIELD(p2p.retention.direct),
          "How long a direct message waits in the recipient's inbox.")
          .Positive(),

      // dht
      Key("dht.replication_factor", BZZZ_FIELD(dht.replication_factor),
          "Target number of nodes holding each record.")
          .Range(1, 20),
      Key("dht.provider_refresh", BZZZ_FIELD(dht.provider_refresh),
          "How often provider records are re-announced.")
          .Positive(),
      Key("dht.provider_ttl", BZZZ_FIELD(dht.provider_ttl),
          "A provider record not refreshed for this long expires.")
          .Positive(),
      Key("dht.record_ttl", BZZZ_FIELD(dht.record_ttl),
          "DHT expiration of records; every holder re-puts its records each dht.provider_refresh.")
          .Positive(),
      Key("dht.operation_timeout", BZZZ_FIELD(dht.operation_timeout),
          "Longest wait for one DHT put, get or discover.")
          .Positive(),
      Key("dht.cache_ttl", BZZZ_FIELD(dht.cache_ttl), "Lifetime of fetched records in the local DHT cache.")
          .Positive(),
      Key("dht.cache_max_bytes", BZZZ_FIELD(dht.cache_max_bytes),
          "Size limit of the local DHT cache in <data_dir>/dht/cache; 0 disables it.")
          .Bytes(),

      // election
      Key("election.admin_capable", BZZZ_FIELD(election.admin_capable),
          "Whether this node stands as a candidate for admin."),
      Key("election.bootstrap_expect", BZZZ_FIELD(election.bootstrap_expect),
          "A fresh admin-capable node forms the electorate once it sees exactly this many fresh "
          "admin-capable nodes (itself included): 1 for a single node, N for N nodes started together; "
          "0 joins an existing cluster (then add it with `bzzz election electorate add`).")
          .Range(0, 1024),
      Key("election.heartbeat_interval", BZZZ_FIELD(election.heartbeat_interval),
          "How often the admin sends heartbeats.")
          .Positive(),
      Key("election.election_timeout", BZZZ_FIELD(election.election_timeout),
          "Followers start an election after a random time in [t, 2t) without a heartbeat.")
          .Positive(),
      Key("election.stability_window", BZZZ_FIELD(election.stability_window),
          "Minimum time between leadership changes, to prevent churn.")
          .Min(0),
      Key("election.autopilot.stabilization_time", BZZZ_FIELD(election.autopilot.stabilization_time),
          "The admin adds an admin-capable member to the electorate once it has been heard continuously this long; 0 turns adding off.")
          .Min(0),
      Key("election.autopilot.dead_member_removal", BZZZ_FIELD(election.autopilot.dead_member_removal),
          "The admin removes a member not heard from for this long, while the live members stay a majority; 0 turns removal off.")
          .Min(0),

      // agents
      Key("agents.initial_agents", BZZZ_FIELD(agents.initial_agents), "Agents started with the node.")
          .Range(0, 10000),
      Key("agents.heartbeat_interval", BZZZ_FIELD(agents.heartbeat_interval),
          "How often each agent reports its state.")
          .Positive(),
      Key("agents.autoscaling.enabled", BZZZ_FIELD(agents.autoscaling.enabled),
          "Scale the agent pool on CPU, memory and queue depth.")
          .Alias("performance.autoscaling.enabled"),
      Key("agents.autoscaling.min_agents", BZZZ_FIELD(agents.autoscaling.min_agents),
          "Fewest agents autoscaling keeps.")
          .Range(0, 10000)
          .Alias("performance.autoscaling.minAgents"),
      Key("agents.autoscaling.max_agents", BZZZ_FIELD(agents.autoscaling.max_agents),
          "Most agents autoscaling starts; at least min_agents.")
          .Range(0, 10000)
          .Alias("performance.autoscaling.maxAgents"),
      Key("agents.autoscaling.target_cpu", BZZZ_FIELD(agents.autoscaling.target_cpu),
          "Machine CPU use (percent) up to which the pool may grow when work waits and every agent is busy (agents are threads on this machine: past it, more agents add no capacity).")
          .Above(0, 100)
          .Alias("performance.autoscaling.targetCpu"),
      Key("agents.autoscaling.target_memory", BZZZ_FIELD(agents.autoscaling.target_memory),
          "Machine memory use (percent) up to which the pool may grow; above it the pool sheds agents.")
          .Above(0, 100)
          .Alias("performance.autoscaling.targetMemory"),
      Key("agents.autoscaling.scale_up_cooldown", BZZZ_FIELD(agents.autoscaling.scale_up_cooldown),
          "Minimum time between two scale-ups.")
          .Min(0)
          .Alias("performance.autoscaling.scaleUpCooldown"),
      Key("agents.autoscaling.scale_down_cooldown", BZZZ_FIELD(agents.autoscaling.scale_down_cooldown),
          "Minimum time between two scale-downs.")
          .Min(0)
          .Alias("performance.autoscaling.scaleDownCooldown"),
      Key("agents.autoscaling.step", BZZZ_FIELD(agents.autoscaling.step),
          "Agents added or removed per scaling decision.")
          .Range(1, 10000),

      Key("agents.sandbox.bwrap", BZZZ_FIELD(agents.sandbox.bwrap), "The bubblewrap binary of the command executor."),
      Key("agents.sandbox.allow_network", BZZZ_FIELD(agents.sandbox.allow_network),
          "Whether a command task may ask for network access (\"network\": true); never by default."),
      Key("agents.sandbox.memory_limit_mb", BZZZ_FIELD(agents.sandbox.memory_limit_mb),
          "Address-space limit of a sandboxed task, in MiB (a task may ask for less).")
          .Range(16, 1 << 20),
      Key("agents.sandbox.max_output_bytes", BZZZ_FIELD(agents.sandbox.max_output_bytes),
          "stdout and stderr of a sandboxed task are each cut at this size.")
          .Bytes()
          .Min(1),
      Key("agents.sandbox.work_root", BZZZ_FIELD(agents.sandbox.work_root),
          "Where private work directories are made; empty means <data_dir>-sandbox beside the private data "
          "directory on a root node (tasks run as other uids), <data_dir>/sandbox otherwise. Tasks' uids must be able "
          "to reach it (every parent directory searchable)."),
      Key("agents.sandbox.uid_range_start", BZZZ_FIELD(agents.sandbox.uid_range_start),
          "When the node runs as root, each running task's bubblewrap runs as its own uid and gid from "
          "[uid_range_start, uid_range_start + uid_range_size) (unprivileged user namespaces), so that one task's "
          "process limit never touches another's; -1 keeps root (no process limit). Use uids no account owns.")
          .Range(-1, 2147483647 - (1 << 16)),
      Key("agents.sandbox.uid_range_size", BZZZ_FIELD(agents.sandbox.uid_range_size),
          "How many uids the range holds: at most this many sandboxed tasks run at once (more wait as "
          "Unavailable and are retried).")
          .Range(1, 1 << 16),
      Key("agents.sandbox.max_processes", BZZZ_FIELD(agents.sandbox.max_processes),
          "Most processes of one running task (RLIMIT_NPROC of its uid): fork bombs stop here. Not enforced for "
          "root (uid_range_start -1).")
          .Range(16, 1 << 22),
      Key("agents.http.allow", BZZZ_FIELD(agents.http.allow),
          "Hosts and CIDRs the http executor may reach although they are loopback, link-local, private, "
          "multicast or this node's own addresses (all refused by default).")
          .Check(CheckHostOrCidr),
      Key("agents.http.max_response_bytes", BZZZ_FIELD(agents.http.max_response_bytes),
          "Longest webhook answer the http executor reads; a longer one fails the attempt.")
          .Bytes()
          .Range(1024, 64.0 * (1 << 20)),
      Key("agents.secrets_file", BZZZ_FIELD(agents.secrets_file),
          "JSON object file {\"NAME\": \"value\"} that secret://NAME in a task's env or webhook headers refers "
          "to (after the environment variable BZZZ_SECRET_NAME); must not be readable by group or others."),
      Key("agents.llm.endpoint", BZZZ_FIELD(agents.llm.endpoint),
          "Base URL of the LLM server (e.g. http://127.0.0.1:11434); empty disables the llm executor."),
      Key("agents.llm.api", BZZZ_FIELD(agents.llm.api), "Protocol of the LLM server.").OneOf({"ollama", "openai"}),
      Key("agents.llm.models", BZZZ_FIELD(agents.llm.models),
          "Models in order of preference; the first one the server offers is used."),
      Key("agents.llm.api_key", BZZZ_FIELD(agents.llm.api_key), "Bearer token for OpenAI-compatible servers.")
          .Secret(),
      Key("agents.llm.max_iterations", BZZZ_FIELD(agents.llm.max_iterations),
          "Most reasoning-loop iterations of an llm task that does not set its own.")
          .Range(1, 1000),
      Key("agents.llm.request_timeout", BZZZ_FIELD(agents.llm.request_timeout), "Time limit of one LLM request.")
          .Positive(),
      Key("agents.llm.stuck_iterations", BZZZ_FIELD(agents.llm.stuck_iterations),
          "Iterations in a row without progress (no command that succeeded with output not seen before) after "
          "which an llm task is stuck and asks other agents for help.")
          .Range(1, 1000),
      Key("agents.llm.stuck_repeats", BZZZ_FIELD(agents.llm.stuck_repeats),
          "Times the same command may fail before an llm task is stuck and asks other agents for help.")
          .Range(1, 1000),
      Key("agents.llm.max_help_requests", BZZZ_FIELD(agents.llm.max_help_requests),
          "Most help requests one attempt of an llm task makes; 0: it never asks.")
          .Range(0, 100),
      Key("agents.llm.help_wait", BZZZ_FIELD(agents.llm.help_wait),
          "Longest time one help request waits for answers (never beyond the attempt's deadline).")
          .Positive(),

      // tasks
      Key("tasks.strategy", BZZZ_FIELD(tasks.strategy), "How the nO loop picks the agent for a task.")
          .OneOf({"round-robin", "least-loaded", "performance", "capability-match"}),
      Key("tasks.default_max_attempts", BZZZ_FIELD(tasks.default_max_attempts),
          "Attempts before a task goes to the dead-letter queue, unless the task says otherwise.")
          .Range(1, 1000),
      Key("tasks.default_timeout", BZZZ_FIELD(tasks.default_timeout),
          "Run time limit of a task that does not set its own.")
          .Positive(),
      Key("tasks.lease_duration", BZZZ_FIELD(tasks.lease_duration),
          "How long an assignment holds without renewal before the task is reassigned.")
          .Positive(),
      Key("tasks.owner_lease", BZZZ_FIELD(tasks.owner_lease),
          "With a shared PostgreSQL store: how long a node's lease on its tasks lasts without renewal "
          "before a surviving node takes its unfinished tasks over (renewed every quarter of it).")
          .Range(200, 600000),
      Key("tasks.max_queue_depth", BZZZ_FIELD(tasks.max_queue_depth),
          "Most queued tasks; submissions beyond it are rejected.")
          .Min(1),
      Key("tasks.retry_backoff_base", BZZZ_FIELD(tasks.retry_backoff_base),
          "First retry delay; doubles per attempt, with jitter.")
          .Positive(),
      Key("tasks.retry_backoff_max", BZZZ_FIELD(tasks.retry_backoff_max), "Longest retry delay.").Positive(),

      // hmmm
      Key("hmmm.enabled", BZZZ_FIELD(hmmm.enabled), "Run HMMM: rooms, their API and their topics (docs/hmmm.md)."),
      Key("hmmm.objection_window", BZZZ_FIELD(hmmm.objection_window),
          "Time others have to object to a plan proposal.")
          .Min(0),
      Key("hmmm.quorum", BZZZ_FIELD(hmmm.quorum),
          "Share of a room's participants (the proposer included) whose agreement accepts a plan when its objection "
          "window closes without an objection.")
          .Range(0.01, 1),
      Key("hmmm.message_limit", BZZZ_FIELD(hmmm.message_limit),
          "Messages in a room after which the discussion escalates.")
          .Range(1, 1000000),
      Key("hmmm.room_timeout", BZZZ_FIELD(hmmm.room_timeout),
          "Time after which a room without a decision escalates.")
          .Positive(),
      Key("hmmm.room_ttl", BZZZ_FIELD(hmmm.room_ttl),
          "Time a closed room (decided or resolved) stays open to reading before it is archived.")
          .Positive(),
      Key("hmmm.max_message_bytes", BZZZ_FIELD(hmmm.max_message_bytes), "Largest message body.")
          .Bytes()
          .Range(64, 1 << 20),
      Key("hmmm.room_messages_per_second", BZZZ_FIELD(hmmm.room_messages_per_second),
          "Messages one room accepts per second (token bucket, burst twice the rate).")
          .Range(0.01, 100000),
      Key("hmmm.agent_messages_per_second", BZZZ_FIELD(hmmm.agent_messages_per_second),
          "Messages one agent may post to one room per second (token bucket, burst twice the rate).")
          .Range(0.01, 100000),
      Key("hmmm.hop_limit", BZZZ_FIELD(hmmm.hop_limit), "Most relays a room message may take.").Range(1, 255),
      Key("hmmm.max_participants", BZZZ_FIELD(hmmm.max_participants), "Most participants in one room.")
          .Range(1, 100000),
      Key("hmmm.escalation_keywords", BZZZ_FIELD(hmmm.escalation_keywords),
          "Words in a message that escalate the discussion to a human."),
      Key("hmmm.escalation_webhook", BZZZ_FIELD(hmmm.escalation_webhook),
          "URL that escalations are POSTed to; empty disables the webhook.")
          .Check(CheckOptionalUrl),
      Key("hmmm.help_answers", BZZZ_FIELD(hmmm.help_answers),
          "Answers after which a help request stops waiting (it also stops 5 s after the first answer).")
          .Range(1, 1000),
      Key("hmmm.answer_help", BZZZ_FIELD(hmmm.answer_help),
          "Answer other nodes' help requests with this node's model (agents.llm), when this node has every "
          "capability the task needs."),
      Key("hmmm.escalation_webhook_secret", BZZZ_FIELD(hmmm.escalation_webhook_secret),
          "Key of the HMAC-SHA256 signature sent with each escalation (X-Bzzz-Signature).")
          .Secret(),

      // slurp
      Key("slurp.enabled", BZZZ_FIELD(slurp.enabled),
          "Run SLURP: take events on this node and curate them into decision records while it is admin."),
      Key("slurp.queue_capacity", BZZZ_FIELD(slurp.queue_capacity),
          "Events queued in the store before new ones are refused with 429.")
          .Min(1),
      Key("slurp.max_retries", BZZZ_FIELD(slurp.max_retries),
          "Retries of an event before it goes to the SLURP dead-letter queue.")
          .Range(0, 1000),
      Key("slurp.default_role", BZZZ_FIELD(slurp.default_role),
          "Role a decision record is sealed for (the role part of its UCXL address) unless its event names one.")
          .Check(CheckIdentifier),
      Key("slurp.task_outcomes", BZZZ_FIELD(slurp.task_outcomes),
          "Executors whose tasks' final states (succeeded, dead, cancelled) on this node become SLURP events; "
          "empty: none."),

      // ucxi
      Key("ucxi.enabled", BZZZ_FIELD(ucxi.enabled), "Serve the UCXI API under /ucxi/v1."),
      Key("ucxi.max_payload_bytes", BZZZ_FIELD(ucxi.max_payload_bytes),
          "Largest UCXL content accepted by put and post (at most 16 MiB is used: one DHT record).")
          .Bytes()
          .Range(1, kGiB),

      // security
      Key("security.rbac_enabled", BZZZ_FIELD(security.rbac_enabled),
          "Enforce role-based permissions on every route.")
          .Env({"NO_RBAC_ENABLED"}),
      Key("security.auth_failure_limit", BZZZ_FIELD(security.auth_failure_limit),
          "Failed authentications one client address may make within security.auth_failure_window; past it, "
          "every request of that address needing an identity gets 429 until the window ends.")
          .Range(1, 1000000),
      Key("security.auth_failure_window", BZZZ_FIELD(security.auth_failure_window),
          "The window of security.auth_failure_limit, and how long a throttled address waits at most.")
          .Positive(),
      Key("security.api_tokens", BZZZ_FIELD(security.api_tokens),
          "Static API tokens: items {name, token_hash (salted: bzzz token hash), roles}; file or flag "
          "only."),
      Key("security.roles", BZZZ_FIELD(security.roles),
          "Roles defined or extended here: items {name, permissions [\"resource:action\"]}; file or flag "
          "only."),
      Key("security.oidc.enabled", BZZZ_FIELD(security.oidc.enabled), "Accept OIDC bearer tokens (JWTs)."),
      Key("security.oidc.issuer", BZZZ_FIELD(security.oidc.issuer),
          "Expected JWT issuer; required when OIDC is enabled.")
          .Check(CheckOptionalUrl),
      Key("security.oidc.audience", BZZZ_FIELD(security.oidc.audience),
          "Expected JWT audience; required when OIDC is enabled."),
      Key("security.oidc.jwks_uri", BZZZ_FIELD(security.oidc.jwks_uri),
          "URL of the issuer's signing keys; empty means discovered from the issuer.")
          .Check(CheckOptionalUrl),
      Key("security.oidc.client_id", BZZZ_FIELD(security.oidc.client_id), "OAuth client id for /auth/login.")
          .Env({"NO_OAUTH_CLIENT_ID"}),
      Key("security.oidc.client_secret", BZZZ_FIELD(security.oidc.client_secret),
          "OAuth client secret for the code flow.")
          .Secret()
          .Env({"NO_OAUTH_CLIENT_SECRET"}),
      Key("security.oidc.redirect_uri", BZZZ_FIELD(security.oidc.redirect_uri),
          "Callback URL registered with the identity provider.")
          .Check(CheckOptionalUrl)
          .Env({"NO_OAUTH_REDIRECT_URI"}),
      Key("security.oidc.leeway", BZZZ_FIELD(security.oidc.leeway),
          "Clock skew tolerated when checking exp and nbf.")
          .Min(0),
      Key("security.oidc.role_claim", BZZZ_FIELD(security.oidc.role_claim),
          "Claim of an OIDC token holding its roles: a name, or a dotted path into nested objects "
          "(realm_access.roles); its value is an array of strings or one string.")
          .Check(CheckNonEmpty),
      Key("security.oidc.role_mapping", BZZZ_FIELD(security.oidc.role_mapping),
          "Items <claim value>=<role>: the roles a value of the role claim grants (a value may map to several "
          "roles). Empty: values that name a role of this node are used as they are; set: only mapped values "
          "grant roles.")
          .Check(CheckRoleMapping),
      Key("security.oidc.jwks_refresh", BZZZ_FIELD(security.oidc.jwks_refresh),
          "How often the issuer's signing keys are fetched again (also at once, at most every 10 s, when a "
          "token names a key not seen yet).")
          .Min(1000),
      Key("security.oidc.session_ttl", BZZZ_FIELD(security.oidc.session_ttl),
          "How long a browser session opened by /auth/callback lasts (sessions live in the node's memory: a "
          "restart ends them).")
          .Min(60000),
      Key("security.rate_limit.enabled", BZZZ_FIELD(security.rate_limit.enabled),
          "Rate-limit requests per principal (per client address when anonymous).")
          .Env({"NO_RATE_LIMIT_ENABLED"}),
      Key("security.rate_limit.requests_per_second", BZZZ_FIELD(security.rate_limit.requests_per_second),
          "Sustained request rate allowed per principal.")
          .Above(0, 1e9),
      Key("security.rate_limit.burst", BZZZ_FIELD(security.rate_limit.burst),
          "Requests a principal may make at once before the rate applies.")
          .Range(1, 1e9),
      Key("security.rate_limit.write_requests_per_second",
          BZZZ_FIELD(security.rate_limit.write_requests_per_second),
          "Sustained rate of writes (POST, PUT, PATCH, DELETE) allowed per principal.")
          .Above(0, 1e9),
      Key("security.rate_limit.write_burst", BZZZ_FIELD(security.rate_limit.write_burst),
          "Writes a principal may make at once before the write rate applies.")
          .Range(1, 1e9),
      Key("security.rate_limit.trust_forwarded_headers",
          BZZZ_FIELD(security.rate_limit.trust_forwarded_headers),
          "Take the client address from X-Forwarded-For, only on connections from "
          "security.rate_limit.trusted_proxies."),
      Key("security.rate_limit.trusted_proxies", BZZZ_FIELD(security.rate_limit.trusted_proxies),
          "IP addresses of the proxies in front of the node whose X-Forwarded-For is believed (with "
          "trust_forwarded_headers).")
          .Check(CheckIpAddress),
      Key("security.shhh.patterns", BZZZ_FIELD(security.shhh.patterns),
          "Secrets of your own to redact besides the built-in kinds (bearer and basic credentials, secret-looking "
          "keys, private keys, passwords in URLs, well-known API key shapes, JWTs): items <name>=<ECMAScript "
          "regex>, each match replaced by ***, in logs, task output, stored context and the audit log.")
          .Check(CheckRedactionPattern),
      Key("security.audit.enabled", BZZZ_FIELD(security.audit.enabled),
          "Keep the audit log: refusals (401, 403) and administrative actions in a hash chain signed by the "
          "node key (GET /api/v1/audit, bzzz audit verify)."),
      Key("security.audit.refusals_per_second", BZZZ_FIELD(security.audit.refusals_per_second),
          "Refusals (401, 403) written to the audit log per second; beyond it (and its burst) they are "
          "counted in the next entry written and in no_audit_dropped_total{reason=\"rate\"}.")
          .Above(0, 1e6),
      Key("security.audit.refusal_burst", BZZZ_FIELD(security.audit.refusal_burst),
          "Refusals written at once before the rate applies.")
          .Range(1, 1e6),
      Key("security.keys.enabled", BZZZ_FIELD(security.keys.enabled),
          "Seal stored UCXL context per role (libsodium envelopes, docs/keys.md); off stores it in the clear."),
      Key("security.keys.roles", BZZZ_FIELD(security.keys.roles),
          "Role keys the admin creates besides the authority levels and the RBAC roles (a put to an address "
          "whose role has no key is refused until one exists; bzzz keys rotate ROLE creates one).")
          .Check(CheckKeyRoleName),
      Key("security.keys.readers", BZZZ_FIELD(security.keys.readers),
          "Who may read the context at an address: items '<ucxl pattern> = role[,role...]', the first "
          "match wins; without a match the address's own role part. master always reads.")
          .Check(CheckReaderRule),
      Key("security.keys.rewrap_per_second", BZZZ_FIELD(security.keys.rewrap_per_second),
          "Versions the re-wrap job moves to the newest key versions per second after a rotation.")
          .Above(0, 1e6),
      Key("security.keys.poll_interval", BZZZ_FIELD(security.keys.poll_interval),
          "How often a node reads the key ring and its grant from the DHT (and the admin seals grants).")
          .Min(50),

      // storage

      Key("storage.backend", BZZZ_FIELD(storage.backend),
          "Store backend: embedded SQLite or a shared PostgreSQL.")
          .OneOf({"sqlite", "postgres"}),
      Key("storage.sqlite.path", BZZZ_FIELD(storage.sqlite.path),
          "SQLite database file; empty means <data_dir>/bzzz.db."),
      Key("storage.sqlite.synchronous", BZZZ_FIELD(storage.sqlite.synchronous),
          "SQLite synchronous mode (with WAL, normal is durable up to the last checkpoint).")
          .OneOf({"normal", "full"}),
      Key("storage.sqlite.busy_timeout", BZZZ_FIELD(storage.sqlite.busy_timeout),
          "How long SQLite waits for a lock before failing.")
          .Positive(),
      Key("storage.postgres.host", BZZZ_FIELD(storage.postgres.host), "PostgreSQL server host.")
          .Env({"NO_DB_HOST"}),
      Key("storage.postgres.port", BZZZ_FIELD(storage.postgres.port), "PostgreSQL server port.")
          .Range(1, 65535)
          .Env({"NO_DB_PORT"}),
      Key("storage.postgres.database", BZZZ_FIELD(storage.postgres.database), "PostgreSQL database name.")
          .Env({"NO_DB_NAME"}),
      Key("storage.postgres.user", BZZZ_FIELD(storage.postgres.user), "PostgreSQL user.").Env({"NO_DB_USER"}),
      Key("storage.postgres.password", BZZZ_FIELD(storage.postgres.password), "PostgreSQL password.")
          .Secret()
          .Env({"NO_DB_PASSWORD"}),
      Key("storage.postgres.sslmode", BZZZ_FIELD(storage.postgres.sslmode),
          "libpq sslmode for the connection.")
          .OneOf({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}),
      Key("storage.pool.enabled", BZZZ_FIELD(storage.pool.enabled),
          "Pool PostgreSQL connections; false: one connection shared by every call.")
          .Alias("performance.connectionPool.enabled"),
      Key("storage.pool.min_connections", BZZZ_FIELD(storage.pool.min_connections),
          "Connections kept open even when idle.")
          .Range(0, 10000)
          .Alias("performance.connectionPool.minConnections"),
      Key("storage.pool.max_connections", BZZZ_FIELD(storage.pool.max_connections),
          "Most open connections; at least min_connections.")
          .Range(1, 10000)
          .Alias("performance.connectionPool.maxConnections"),
      Key("storage.pool.acquire_timeout", BZZZ_FIELD(storage.pool.acquire_timeout),
          "How long a caller waits for a free connection before failing.")
          .Positive()
          .Alias("performance.connectionPool.acquireTimeout"),
      Key("storage.pool.idle_timeout", BZZZ_FIELD(storage.pool.idle_timeout),
          "Idle time after which a connection above the minimum is closed.")
          .Positive()
          .Alias("performance.connectionPool.idleTimeout"),

      // cache
      Key("cache.enabled", BZZZ_FIELD(cache.enabled), "Cache lookups in memory (and Redis when layered).")
          .Alias("performance.caching.enabled"),
      Key("cache.default_ttl", BZZZ_FIELD(cache.default_ttl), "Lifetime of a cache entry that sets none.")
          .Positive()
          .Alias("performance.caching.defaultTtl"),
      Key("cache.max_size", BZZZ_FIELD(cache.max_size), "Most entries in the in-memory cache (LRU beyond).")
          .Min(1)
          .Alias("performance.caching.maxSize"),
      Key("cache.max_bytes", BZZZ_FIELD(cache.max_bytes),
          "Size limit of the in-memory cache (least recently used entries go first).")
          .Bytes()
          .Min(1),
      Key("cache.layers", BZZZ_FIELD(cache.layers),
          "Cache layers, nearest first; losing Redis degrades, never fails.")
          .OneOf({"memory", "redis"})
          .Alias("performance.caching.layers"),
      Key("cache.redis.host", BZZZ_FIELD(cache.redis.host), "Redis server host.").Env({"NO_REDIS_HOST"}),
      Key("cache.redis.port", BZZZ_FIELD(cache.redis.port), "Redis server port.")
          .Range(1, 65535)
          .Env({"NO_REDIS_PORT"}),
      Key("cache.redis.password", BZZZ_FIELD(cache.redis.password), "Redis password (AUTH).")
          .Secret()
          .Env({"NO_REDIS_PASSWORD"}),
      Key("cache.redis.db", BZZZ_FIELD(cache.redis.db), "Redis logical database number.").Range(0, 1000000),
      Key("cache.redis.key_prefix", BZZZ_FIELD(cache.redis.key_prefix),
          "Prefix of every key the cache writes (one Redis may serve several clusters)."),
      Key("cache.redis.timeout", BZZZ_FIELD(cache.redis.timeout),
          "Longest wait to connect to Redis and for each command; past it the command counts as a failure.")
          .Positive(),
      Key("cache.redis.reconnect_interval", BZZZ_FIELD(cache.redis.reconnect_interval),
          "Longest wait between attempts to reconnect to a lost Redis (backoff from 50ms up to it).")
          .Positive(),
      Key("cache.redis.pool.min_connections", BZZZ_FIELD(cache.redis.pool.min_connections),
          "Redis connections kept open even when idle.")
          .Range(0, 1000),
      Key("cache.redis.pool.max_connections", BZZZ_FIELD(cache.redis.pool.max_connections),
          "Most open Redis connections; at least min_connections.")
          .Range(1, 1000),
      Key("cache.redis.pool.acquire_timeout", BZZZ_FIELD(cache.redis.pool.acquire_timeout),
          "How long a lookup waits for a free Redis connection before skipping Redis (a miss, not an error).")
          .Positive(),
      Key("cache.redis.pool.idle_timeout", BZZZ_FIELD(cache.redis.pool.idle_timeout),
          "Idle time after which a Redis connection above the minimum is closed.")
          .Positive(),

      // monitoring
      Key("monitoring.prometheus_enabled", BZZZ_FIELD(monitoring.prometheus_enabled),
          "Serve Prometheus metrics on /metrics.")
          .Env({"NO_PROMETHEUS_ENABLED"}),
      Key("monitoring.grafana_enabled", BZZZ_FIELD(monitoring.grafana_enabled),
          "Accepted for nO compatibility; dashboards ship in deploy/grafana.")
          .Env({"NO_GRAFANA_ENABLED"}),

      // console
      Key("console.enabled", BZZZ_FIELD(console.enabled),
          "Serve the web console under /ui/, with GET /api/v1/me and GET /api/v1/console/history."),
      Key("console.assets_dir", BZZZ_FIELD(console.assets_dir),
          "Serve the console's files from this directory instead of the copy built into the binary "
          "(for working on the console; empty: the built-in copy)."),
      Key("console.history_interval", BZZZ_FIELD(console.history_interval),
          "How often the node samples its own metrics, health and admin for the console's history.")
          .Positive(),
      Key("console.history_samples", BZZZ_FIELD(console.history_samples),
          "History samples kept in memory (the window is this times console.history_interval).")
          .Range(10, 100000),

      // operations
      Key("operations.shutdown_timeout", BZZZ_FIELD(operations.shutdown_timeout),
          "Time allowed for the whole graceful shutdown sequence.")
          .Positive(),
      Key("operations.drain_timeout", BZZZ_FIELD(operations.drain_timeout),
          "Time in-flight requests get to finish during shutdown.")
          .Positive(),
      Key("operations.debug_requests_capacity", BZZZ_FIELD(operations.debug_requests_capacity),
          "Recent requests kept for /debug/requests (ring buffer).")
          .Min(1),
      Key("operations.health_check_interval", BZZZ_FIELD(operations.health_check_interval),
          "How often health checks run in the background.")
          .Positive(),
      Key("operations.health_check_timeout", BZZZ_FIELD(operations.health_check_timeout),
          "Time a health check may take before it counts as unhealthy.")
          .Positive(),
      Key("operations.memory_degraded_ratio", BZZZ_FIELD(operations.memory_degraded_ratio),
          "Memory use (fraction of the limit) at which the memory check reports degraded.")
          .Above(0, 1),
      Key("operations.memory_unhealthy_ratio", BZZZ_FIELD(operations.memory_unhealthy_ratio),
          "Memory use (fraction of the limit) at which the memory check reports unhealthy.")
          .Above(0, 1),
  };
}

#undef BZZZ_FIELD

// The table plus the lookups derived from it.
struct Schema {
  std::vector<KeyDef> keys;
  std::map<std::string, const KeyDef*, std::less<>> by_path;       // canonical paths
  std::map<std::string, const KeyDef*, std::less<>> by_file_path;  // canonical and alias paths
  std::map<std::string, const KeyDef*, std::less<>> by_env;
  // Section path ("" for the top level) -> names of its children, in schema order.
  std::map<std::string, std::vector<std::string>, std::less<>> children;
  std::vector<std::string> env_names;
  std::vector<std::string> paths;
};

void AddChildren(Schema& schema, const std::string& path) {
  std::string prefix;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = path.find('.', start);
    std::string name = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    auto& names = schema.children[prefix];
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    if (dot == std::string::npos) return;
    prefix = path.substr(0, dot);
    start = dot + 1;
  }
}

const Schema& GetSchema() {
  static const Schema* const schema = [] {
    auto* s = new Schema;
    s->keys = BuildKeys();
    for (const KeyDef& key : s->keys) {
      s->by_path[key.path] = &key;
      s->by_file_path[key.path] = &key;
      s->paths.push_back(key.path);
      AddChildren(*s, key.path);
      if (!key.file_alias.empty()) {
        s->by_file_path[key.file_alias] = &key;
        AddChildren(*s, key.file_alias);
      }
      for (const std::string& name : key.env) {
        s->by_env[name] = &key;
        s->env_names.push_back(name);
      }
    }
    return s;
  }();
  return *schema;
}

// ---------------------------------------------------------------------------
// Scalar parsing
// ---------------------------------------------------------------------------

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::optional<std::int64_t> ParseInteger(std::string_view text) {
  text = Trim(text);
  bool negative = false;
  if (!text.empty() && (text.front() == '+' || text.front() == '-')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  int base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    base = 16;
    text.remove_prefix(2);
  }
  if (text.empty() || !std::isxdigit(static_cast<unsigned char>(text.front()))) return std::nullopt;
  std::uint64_t magnitude = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), magnitude, base);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  if (magnitude > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
  auto value = static_cast<std::int64_t>(magnitude);
  return negative ? -value : value;
}

std::optional<double> ParseNumber(std::string_view text) {
  text = Trim(text);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  if (text.empty()) return std::nullopt;
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) return std::nullopt;
  return value;
}

std::optional<bool> ParseBool(std::string_view text) {
  std::string s = Lower(Trim(text));
  if (s == "true" || s == "yes" || s == "on" || s == "1") return true;
  if (s == "false" || s == "no" || s == "off" || s == "0") return false;
  return std::nullopt;
}

// "<digits>[ ]<unit>" with the unit looked up case-insensitively in `units`
// (an empty unit is allowed when `units` has ""). Fails on overflow.
std::optional<std::uint64_t> ParseWithUnit(
    std::string_view text, std::initializer_list<std::pair<std::string_view, std::uint64_t>> units) {
  text = Trim(text);
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0) return std::nullopt;
  std::uint64_t number = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + digits, number);
  if (ec != std::errc() || end != text.data() + digits) return std::nullopt;
  std::string unit = Lower(Trim(text.substr(digits)));
  for (const auto& [name, factor] : units) {
    if (unit != name) continue;
    if (number > std::numeric_limits<std::uint64_t>::max() / factor) return std::nullopt;
    return number * factor;
  }
  return std::nullopt;
}

std::optional<std::int64_t> ParseDuration(std::string_view text) {
  auto ms = ParseWithUnit(text, {{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}});
  // Bounded so that adding durations to a time point cannot overflow.
  constexpr std::uint64_t kMax = 1ULL << 50;
  if (!ms || *ms > kMax) return std::nullopt;
  return static_cast<std::int64_t>(*ms);
}

std::optional<std::uint64_t> ParseSize(std::string_view text) {
  constexpr std::uint64_t kK = 1000;
  constexpr std::uint64_t kKi = 1024;
  return ParseWithUnit(text, {{"", 1},
                              {"b", 1},
                              {"kb", kK},
                              {"mb", kK * kK},
                              {"gb", kK * kK * kK},
                              {"tb", kK * kK * kK * kK},
                              {"kib", kKi},
                              {"mib", kKi * kKi},
                              {"gib", kKi * kKi * kKi},
                              {"tib", kKi * kKi * kKi * kKi}});
}

// --- Text forms of values ---------------------------------------------------

std::string ShortestNumber(double value) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(value);
}

// The largest binary unit that divides the value exactly: 1048576 -> "1MiB".
std::string HumanBytes(std::uint64_t bytes) {
  static constexpr std::pair<const char*, std::uint64_t> kUnits[] = {
      {"TiB", 1ULL << 40}, {"GiB", 1ULL << 30}, {"MiB", 1ULL << 20}, {"KiB", 1ULL << 10}};
  for (const auto& [unit, factor] : kUnits) {
    if (bytes != 0 && bytes % factor == 0) return std::to_string(bytes / factor) + unit;
  }
  return std::to_string(bytes);
}

// The largest unit that divides the value exactly: 300000 -> "5m".
std::string HumanDuration(std::int64_t ms) {
  static constexpr std::pair<const char*, std::int64_t> kUnits[] = {
      {"h", 3600000}, {"m", 60000}, {"s", 1000}};
  for (const auto& [unit, factor] : kUnits) {
    if (ms != 0 && ms % factor == 0) return std::to_string(ms / factor) + unit;
  }
  return std::to_string(ms) + "ms";
}

std::string Join(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += separator;
    out += items[i];
  }
  return out;
}

std::string FormatBound(const KeyDef& key, double bound) {
  if (key.kind == Kind::kSize) return HumanBytes(static_cast<std::uint64_t>(bound));
  if (key.kind == Kind::kDuration) return HumanDuration(static_cast<std::int64_t>(bound));
  return ShortestNumber(bound);
}

std::string RangeText(const KeyDef& key) {
  if (key.kind == Kind::kDuration && key.min == 1.0 && !key.max) return " > 0";
  if (key.min && key.max) {
    if (key.min_exclusive)
      return " in (" + FormatBound(key, *key.min) + ", " + FormatBound(key, *key.max) + "]";
    return " in " + FormatBound(key, *key.min) + ".." + FormatBound(key, *key.max);
  }
  if (key.min) return (key.min_exclusive ? " > " : " >= ") + FormatBound(key, *key.min);
  if (key.max) return " <= " + FormatBound(key, *key.max);
  return "";
}

// What a valid value of the key looks like, for error messages.
std::string Expectation(const KeyDef& key) {
  switch (key.kind) {
    case Kind::kString:
      return "a string";
    case Kind::kEnum:
      return "one of " + Join(key.choices, "|");
    case Kind::kInt:
    case Kind::kUint32:
    case Kind::kCount:
      return "an integer" + RangeText(key);
    case Kind::kDouble:
      return "a number" + RangeText(key);
    case Kind::kBool:
      return "a boolean (true/false, yes/no, on/off, 1/0)";
    case Kind::kDuration:
      return "a duration (milliseconds, or e.g. 250ms, 5s, 2m, 1h)" + RangeText(key);
    case Kind::kSize:
      return "a size in bytes (e.g. 4096, 512KiB, 1MiB, 4MB)" + RangeText(key);
    case Kind::kStringList:
      return "a list of strings";
    case Kind::kEnumList:
      return "a list of values from " + Join(key.choices, "|");
    case Kind::kApiTokens:
      return "a list of API tokens {name, token_hash, roles}";
    case Kind::kRoles:
      return "a list of roles {name, permissions}";
  }
  return "a value";
}

std::string TypeName(const KeyDef& key) {
  switch (key.kind) {
    case Kind::kString:
      return "string";
    case Kind::kEnum:
      return "enum(" + Join(key.choices, "|") + ")";
    case Kind::kInt:
      return "int";
    case Kind::kUint32:
      return "uint32";
    case Kind::kCount:
      return "uint";
    case Kind::kDouble:
      return "double";
    case Kind::kBool:
      return "bool";
    case Kind::kDuration:
      return "duration";
    case Kind::kSize:
      return "size";
    case Kind::kStringList:
      return "list<string>";
    case Kind::kEnumList:
      return "list<enum(" + Join(key.choices, "|") + ")>";
    case Kind::kApiTokens:
      return "list<api_token>";
    case Kind::kRoles:
      return "list<role>";
  }
  return "unknown";
}

bool InRange(const KeyDef& key, double value) {
  if (key.min && (key.min_exclusive ? value <= *key.min : value < *key.min)) return false;
  if (key.max && value > *key.max) return false;
  return true;
}

std::string Invalid(const KeyDef& key, std::string_view got) {
  std::string message = "expected " + Expectation(key) + ", got " + std::string(got);
  if (!key.range_note.empty()) message += " (" + key.range_note + ")";
  return message;
}

// A problem found while reading one value; `path` may name an item inside it.
struct Problem {
  std::string path;
  std::string message;
};
using Problems = std::vector<Problem>;

// Parses one scalar text into the key's field. Returns the error message, or
// "" after assigning. The field is left untouched on error.
std::string SetScalar(const KeyDef& key, std::string_view text, Config& config) {
  FieldRef field = key.field(config);
  auto bad = [&] { return Invalid(key, Quote(text)); };
  switch (key.kind) {
    case Kind::kString: {
      if (key.check) {
        std::string problem = key.check(text);
        if (!problem.empty()) return problem;
      }
      *std::get<std::string*>(field) = std::string(text);
      return "";
    }
    case Kind::kEnum: {
      std::string value = Lower(Trim(text));
      if (std::find(key.choices.begin(), key.choices.end(), value) == key.choices.end()) return bad();
      *std::get<std::string*>(field) = value;
      return "";
    }
    case Kind::kInt: {
      auto v = ParseInteger(text);
      if (!v || *v < std::numeric_limits<int>::min() || *v > std::numeric_limits<int>::max() ||
          !InRange(key, static_cast<double>(*v))) {
        return bad();
      }
      *std::get<int*>(field) = static_cast<int>(*v);
      return "";
    }
    case Kind::kUint32: {
      auto v = ParseInteger(text);
      if (!v || *v < 0 || *v > std::numeric_limits<std::uint32_t>::max() ||
          !InRange(key, static_cast<double>(*v))) {
        return bad();
      }
      *std::get<std::uint32_t*>(field) = static_cast<std::uint32_t>(*v);
      return "";
    }
    case Kind::kCount: {
      auto v = ParseInteger(text);
      if (!v || *v < 0 || !InRange(key, static_cast<double>(*v))) return bad();
      *std::get<std::size_t*>(field) = static_cast<std::size_t>(*v);
      return "";
    }
    case Kind::kSize: {
      auto v = ParseSize(text);
      if (!v || *v > std::numeric_limits<std::size_t>::max() || !InRange(key, static_cast<double>(*v)))
        return bad();
      *std::get<std::size_t*>(field) = static_cast<std::size_t>(*v);
      return "";
    }
    case Kind::kDouble: {
      auto v = ParseNumber(text);
      if (!v || !InRange(key, *v)) return bad();
      *std::get<double*>(field) = *v;
      return "";
    }
    case Kind::kBool: {
      auto v = ParseBool(text);
      if (!v) return bad();
      *std::get<bool*>(field) = *v;
      return "";
    }
    case Kind::kDuration: {
      auto v = ParseDuration(text);
      if (!v || !InRange(key, static_cast<double>(*v))) return bad();
      *std::get<Millis*>(field) = Millis(*v);
      return "";
    }
    default:
      return "internal error: " + key.path + " is not a scalar";
  }
}

std::string IndexPath(const std::string& path, std::size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

// Validates list items and assigns the list when every item is fine.
void SetList(const KeyDef& key, std::vector<std::string> items, const std::string& path, Config& config,
             Problems& problems) {
  std::size_t before = problems.size();
  for (std::size_t i = 0; i < items.size(); ++i) {
    std::string& item = items[i];
    if (key.kind == Kind::kEnumList) {
      item = Lower(Trim(item));
      if (std::find(key.choices.begin(), key.choices.end(), item) == key.choices.end()) {
        problems.push_back(
            {IndexPath(path, i), "expected one of " + Join(key.choices, "|") + ", got " + Quote(item)});
      } else if (std::find(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(i), item) !=
                 items.begin() + static_cast<std::ptrdiff_t>(i)) {
        problems.push_back({IndexPath(path, i), "duplicate value " + Quote(item)});
      }
      continue;
    }
    std::string problem = item.empty() ? "must not be empty" : key.check ? key.check(item) : "";
    if (!problem.empty()) problems.push_back({IndexPath(path, i), problem});
  }
  if (problems.size() == before) *std::get<std::vector<std::string>*>(key.field(config)) = std::move(items);
}

// --- Edit distance for "did you mean" ---------------------------------------

// Optimal string alignment distance: Levenshtein plus adjacent transpositions.
std::size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

// The candidate closest to `input`, or "" when none is plausibly meant.
// camelCase and snake_case spellings of the same name match ("minAgents").
std::string NearestName(std::string_view input, const std::vector<std::string>& candidates) {
  auto squash = [](std::string_view s) {
    std::string out;
    for (char c : s) {
      if (c != '_' && c != '-') out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
  };
  const std::string wanted = squash(input);
  for (const std::string& candidate : candidates) {
    if (squash(candidate) == wanted) return candidate;
  }
  const std::string lowered = Lower(input);
  const std::size_t limit = std::max<std::size_t>(1, std::min<std::size_t>(3, input.size() / 3));
  std::string best;
  std::size_t best_distance = limit + 1;
  for (const std::string& candidate : candidates) {
    std::size_t distance = EditDistance(lowered, Lower(candidate));
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

std::string UnknownKeyMessage(std::string_view name, const std::vector<std::string>& candidates) {
  std::string nearest = NearestName(name, candidates);
  return nearest.empty() ? "unknown key" : "unknown key; did you mean " + Quote(nearest) + "?";
}

// ---------------------------------------------------------------------------
// YAML values
// ---------------------------------------------------------------------------

std::string DescribeNode(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return Quote(node.Scalar());
    default:
      return "null";
  }
}

// List items that must be scalars; an item of another type is a problem.
std::optional<std::vector<std::string>> ScalarItems(const YAML::Node& node, const std::string& path,
                                                    const std::string& expectation, Problems& problems) {
  if (!node.IsSequence()) {
    problems.push_back({path, "expected " + expectation + ", got " + DescribeNode(node)});
    return std::nullopt;
  }
  std::vector<std::string> items;
  bool ok = true;
  for (std::size_t i = 0; i < node.size(); ++i) {
    const YAML::Node item = node[i];
    if (!item.IsScalar()) {
      problems.push_back({IndexPath(path, i), "expected a string, got " + DescribeNode(item)});
      ok = false;
      continue;
    }
    items.push_back(item.Scalar());
  }
  if (!ok) return std::nullopt;
  return items;
}

// Walks the fields of one list item (a mapping): unknown names are problems,
// null values count as absent, every other field goes to `on_field`.
void ForEachItemField(
    const YAML::Node& item, const std::string& path, const std::vector<std::string>& known,
    Problems& problems,
    const std::function<void(const std::string&, const YAML::Node&, const std::string&)>& on_field) {
  for (auto it = item.begin(); it != item.end(); ++it) {
    if (!it->first.IsScalar()) {
      problems.push_back({path, "keys must be strings, got " + DescribeNode(it->first)});
      continue;
    }
    const std::string name = it->first.Scalar();
    const std::string field_path = path + "." + name;
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      problems.push_back({field_path, UnknownKeyMessage(name, known)});
      continue;
    }
    if (it->second.IsNull()) continue;
    on_field(name, it->second, field_path);
  }
}

std::optional<std::vector<ApiToken>> ParseApiTokens(const KeyDef& key, const YAML::Node& node,
                                                    const std::string& path, Problems& problems) {
  if (!node.IsSequence()) {
    problems.push_back({path, "expected " + Expectation(key) + ", got " + DescribeNode(node)});
    return std::nullopt;
  }
  static const std::vector<std::string> kFields = {"name", "token_hash", "token_sha256", "roles"};
  const std::size_t before = problems.size();
  std::vector<ApiToken> tokens;
  std::map<std::string, std::size_t> names;
  std::map<std::string, std::size_t> hashes;
  for (std::size_t i = 0; i < node.size(); ++i) {
    const YAML::Node item = node[i];
    const std::string item_path = IndexPath(path, i);
    if (!item.IsMap()) {
      problems.push_back(
          {item_path, "expected a mapping {name, token_hash, roles}, got " + DescribeNode(item)});
      continue;
    }
    ApiToken token;
    std::set<std::string> present;
    bool well_formed = true;  // no type errors in the fields, so "required" is meaningful
    ForEachItemField(item, item_path, kFields, problems,
                     [&](const std::string& name, const YAML::Node& value, const std::string& field_path) {
                       present.insert(name);
                       if (name == "roles") {
                         auto roles = ScalarItems(value, field_path, "a list of role names", problems);
                         if (!roles) return;
                         if (roles->empty()) problems.push_back({field_path, "must list at least one role"});
                         for (std::size_t r = 0; r < roles->size(); ++r) {
                           std::string problem = CheckIdentifier((*roles)[r]);
                           if (!problem.empty()) problems.push_back({IndexPath(field_path, r), problem});
                         }
                         token.roles = std::move(*roles);
                         return;
                       }
                       if (!value.IsScalar()) {
                         problems.push_back({field_path, "expected a string, got " + DescribeNode(value)});
                         well_formed = false;
                         return;
                       }
                       (name == "name"         ? token.name
                        : name == "token_hash" ? token.token_hash
                                               : token.token_sha256) = value.Scalar();
                     });
    if (!present.count("name")) {
      problems.push_back({item_path + ".name", "required: the name of the principal"});
    } else if (well_formed && token.name.empty()) {
      problems.push_back({item_path + ".name", "must not be empty"});
    }
    const bool hex64 = IsLowerHex(token.token_sha256, 64);
    const bool salted = present.count("token_hash") && TokenHashProblem(token.token_hash).empty();
    if (present.count("token_hash") && present.count("token_sha256")) {
      problems.push_back({item_path + ".token_sha256", "give token_hash or token_sha256, not both"});
    } else if (present.count("token_hash")) {
      if (well_formed && !salted) {
        problems.push_back({item_path + ".token_hash", TokenHashProblem(token.token_hash) + ", got " +
                                                           Quote(token.token_hash.substr(0, 16) + "...")});
      }
    } else if (!present.count("token_sha256")) {
      problems.push_back({item_path + ".token_hash",
                          "required: the salted hash of the token (bzzz token hash prints one), or "
                          "token_sha256 (unsalted, older configurations)"});
    } else if (well_formed && !hex64) {
      problems.push_back(
          {item_path + ".token_sha256",
           "expected 64 lower-case hex digits (the SHA-256 of the token), got " + Quote(token.token_sha256)});
    }
    if (!present.count("roles"))
      problems.push_back({item_path + ".roles", "required: a non-empty list of roles"});
    if (!token.name.empty()) {
      auto [it, inserted] = names.emplace(token.name, i);
      if (!inserted) {
        problems.push_back({item_path + ".name", "duplicate token name " + Quote(token.name) + " (also " +
                                                     IndexPath(path, it->second) + ")"});
      }
    }
    if (hex64 || salted) {
      auto [it, inserted] = hashes.emplace(salted ? token.token_hash : token.token_sha256, i);
      if (!inserted) {
        problems.push_back({item_path + (salted ? ".token_hash" : ".token_sha256"),
                            "duplicate token hash (also " + IndexPath(path, it->second) + ")"});
      }
    }
    tokens.push_back(std::move(token));
  }
  if (problems.size() != before) return std::nullopt;
  return tokens;
}

std::optional<std::vector<RoleDefinition>> ParseRoles(const KeyDef& key, const YAML::Node& node,
                                                      const std::string& path, Problems& problems) {
  if (!node.IsSequence()) {
    problems.push_back({path, "expected " + Expectation(key) + ", got " + DescribeNode(node)});
    return std::nullopt;
  }
  static const std::vector<std::string> kFields = {"name", "permissions"};
  const std::size_t before = problems.size();
  std::vector<RoleDefinition> roles;
  std::map<std::string, std::size_t> names;
  for (std::size_t i = 0; i < node.size(); ++i) {
    const YAML::Node item = node[i];
    const std::string item_path = IndexPath(path, i);
    if (!item.IsMap()) {
      problems.push_back({item_path, "expected a mapping {name, permissions}, got " + DescribeNode(item)});
      continue;
    }
    RoleDefinition role;
    ForEachItemField(item, item_path, kFields, problems,
                     [&](const std::string& name, const YAML::Node& value, const std::string& field_path) {
                       if (name == "name") {
                         if (!value.IsScalar()) {
                           problems.push_back({field_path, "expected a string, got " + DescribeNode(value)});
                           return;
                         }
                         role.name = value.Scalar();
                         std::string problem = CheckIdentifier(role.name);
                         if (!problem.empty()) problems.push_back({field_path, problem});
                         return;
                       }
                       auto permissions = ScalarItems(value, field_path, "a list of permissions", problems);
                       if (!permissions) return;
                       for (std::size_t p = 0; p < permissions->size(); ++p) {
                         std::string problem = CheckPermission((*permissions)[p]);
                         if (!problem.empty()) problems.push_back({IndexPath(field_path, p), problem});
                       }
                       role.permissions = std::move(*permissions);
                     });
    if (role.name.empty()) {
      problems.push_back({item_path + ".name", "required: the role's name"});
    } else {
      auto [it, inserted] = names.emplace(role.name, i);
      if (!inserted) {
        problems.push_back({item_path + ".name", "duplicate role " + Quote(role.name) + " (also " +
                                                     IndexPath(path, it->second) + ")"});
      }
    }
    roles.push_back(std::move(role));
  }
  if (problems.size() != before) return std::nullopt;
  return roles;
}

// Reads a value from a document (file, or a YAML/JSON flag value) into the key's field.
void SetFromNode(const KeyDef& key, const YAML::Node& node, const std::string& path, Config& config,
                 Problems& problems) {
  switch (key.kind) {
    case Kind::kStringList:
    case Kind::kEnumList: {
      auto items = ScalarItems(node, path, Expectation(key), problems);
      if (items) SetList(key, std::move(*items), path, config, problems);
      return;
    }
    case Kind::kApiTokens: {
      auto tokens = ParseApiTokens(key, node, path, problems);
      if (tokens) *std::get<std::vector<ApiToken>*>(key.field(config)) = std::move(*tokens);
      return;
    }
    case Kind::kRoles: {
      auto roles = ParseRoles(key, node, path, problems);
      if (roles) *std::get<std::vector<RoleDefinition>*>(key.field(config)) = std::move(*roles);
      return;
    }
    default: {
      if (!node.IsScalar()) {
        problems.push_back({path, Invalid(key, DescribeNode(node))});
        return;
      }
      std::string problem = SetScalar(key, node.Scalar(), config);
      if (!problem.empty()) problems.push_back({path, problem});
    }
  }
}

// Reads a value given as text (environment variable or flag) into the key's field.
void SetFromText(const KeyDef& key, std::string_view text, Config& config, Problems& problems) {
  switch (key.kind) {
    case Kind::kStringList:
    case Kind::kEnumList: {
      // Comma-separated; blanks around items and empty items are dropped.
      // Items that hold commas themselves (a regex like {8,16}) are given
      // as a flow sequence: ["a{1,2}", "b"].
      std::vector<std::string> items;
      if (!Trim(text).empty() && Trim(text).front() == '[') {
        try {
          const YAML::Node node = YAML::Load(std::string(text));
          if (!node.IsSequence()) throw YAML::Exception(YAML::Mark(), "not a sequence");
          for (const auto& item : node) {
            if (!item.IsScalar()) throw YAML::Exception(YAML::Mark(), "an item is not a string");
            items.push_back(item.as<std::string>());
          }
        } catch (const YAML::Exception& e) {
          problems.push_back({key.path, "expected a comma-separated list or a flow sequence [\"a\", \"b\"]: " +
                                            std::string(e.what())});
          return;
        }
        SetList(key, std::move(items), key.path, config, problems);
        return;
      }
      std::size_t start = 0;
      while (start <= text.size()) {
        std::size_t comma = std::min(text.find(',', start), text.size());
        std::string_view item = Trim(text.substr(start, comma - start));
        if (!item.empty()) items.emplace_back(item);
        start = comma + 1;
      }
      SetList(key, std::move(items), key.path, config, problems);
      return;
    }
    case Kind::kApiTokens:
    case Kind::kRoles: {
      // Lists of objects are given as a YAML or JSON flow document.
      YAML::Node node;
      try {
        node = YAML::Load(std::string(text));
      } catch (const YAML::Exception& e) {
        problems.push_back({key.path, "expected " + Expectation(key) + " as YAML or JSON: " + e.msg});
        return;
      }
      if (node.IsNull()) node = YAML::Node(YAML::NodeType::Sequence);
      SetFromNode(key, node, key.path, config, problems);
      return;
    }
    default: {
      std::string problem = SetScalar(key, text, config);
      if (!problem.empty()) problems.push_back({key.path, problem});
    }
  }
}

// JSON -> YAML node, so that .json files go through the same walk as YAML.
YAML::Node JsonToYaml(const Json& json) {
  switch (json.type()) {
    case Json::value_t::object: {
      YAML::Node map(YAML::NodeType::Map);
      for (const auto& [name, value] : json.items()) map[name] = JsonToYaml(value);
      return map;
    }
    case Json::value_t::array: {
      YAML::Node seq(YAML::NodeType::Sequence);
      for (const Json& value : json) seq.push_back(JsonToYaml(value));
      return seq;
    }
    case Json::value_t::string:
      return YAML::Node(json.get<std::string>());
    case Json::value_t::null:
      return YAML::Node();
    default:
      return YAML::Node(json.dump());  // numbers and booleans as their JSON text
  }
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

class Loader {
 public:
  explicit Loader(LoadResult& result) : result_(result), schema_(GetSchema()) {}

  void Run(const LoadOptions& options) {
    if (options.text) {
      LoadText(*options.text, options.file ? "file:" + *options.file : "text", options.text_is_json);
    } else if (options.file) {
      LoadFile(*options.file);
    }
    ApplyEnvironment(options.env);
    ApplyOverrides(options.overrides);
    ValidateCombinations();
    result_.config = config_;
  }

 private:
  void Error(std::string path, std::string source, std::string message) {
    result_.errors.push_back({std::move(path), std::move(source), std::move(message)});
  }

  // Where the current value of a key came from, for errors found after merging.
  std::string SourceOf(const std::string& path) const {
    auto it = sources_.find(path);
    return it == sources_.end() ? "default" : it->second;
  }

  void LoadFile(const std::string& file) {
    const std::string source = "file:" + file;
    std::error_code ec;
    auto status = std::filesystem::status(file, ec);
    if (!std::filesystem::exists(status)) {
      Error("", source,
            ec && ec != std::errc::no_such_file_or_directory ? "cannot access: " + ec.message()
                                                             : "file not found");
      return;
    }
    if (std::filesystem::is_directory(status)) {
      Error("", source, "is a directory, not a configuration file");
      return;
    }
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      Error("", source, std::string("cannot read: ") + std::strerror(errno));
      return;
    }
    std::ostringstream content;
    content << in.rdbuf();
    if (in.bad()) {
      Error("", source, std::string("cannot read: ") + std::strerror(errno));
      return;
    }
    LoadText(content.str(), source, Lower(std::filesystem::path(file).extension().string()) == ".json");
  }

  void LoadText(const std::string& text, const std::string& source, bool is_json) {
    if (Trim(text).empty()) return;  // an empty file means all defaults

    YAML::Node root;
    if (is_json) {
      // nlohmann gives JSON-specific errors and accepts what YAML parsers
      // reject in JSON (tabs); the walk below is the same for both.
      try {
        root = JsonToYaml(Json::parse(text));
      } catch (const Json::parse_error& e) {
        std::string what = e.what();
        std::size_t bracket = what.find("] ");
        Error("", source,
              "invalid JSON: " + (bracket == std::string::npos ? what : what.substr(bracket + 2)));
        return;
      }
      has_marks_ = false;
    } else {
      try {
        root = YAML::Load(text);
      } catch (const YAML::ParserException& e) {
        Error("", source,
              "syntax error at line " + std::to_string(e.mark.line + 1) + ", column " +
                  std::to_string(e.mark.column + 1) + ": " + e.msg);
        return;
      }
      has_marks_ = true;
    }
    if (root.IsNull()) return;
    if (!root.IsMap()) {
      Error("", source, "the top level must be a mapping of sections, got " + DescribeNode(root));
      return;
    }
    std::map<const KeyDef*, std::string> set_at;  // key -> the path that set it in this file
    WalkSection(root, "", source, set_at);
  }

  std::string LineSuffix(const YAML::Node& node) const {
    if (!has_marks_ || node.Mark().is_null()) return "";
    return " (line " + std::to_string(node.Mark().line + 1) + ")";
  }

  void WalkSection(const YAML::Node& map, const std::string& prefix, const std::string& source,
                   std::map<const KeyDef*, std::string>& set_at) {
    for (auto it = map.begin(); it != map.end(); ++it) {
      if (!it->first.IsScalar()) {
        Error(prefix, source, "keys must be strings, got " + DescribeNode(it->first) + LineSuffix(it->first));
        continue;
      }
      const std::string name = it->first.Scalar();
      const std::string path = prefix.empty() ? name : prefix + "." + name;
      const YAML::Node value = it->second;
      if (auto key = schema_.by_file_path.find(path); key != schema_.by_file_path.end()) {
        if (value.IsNull()) continue;  // "key: ~" or "key:" keeps the default
        auto [previous, inserted] = set_at.emplace(key->second, path);
        if (!inserted) {
          Error(path, source, "set twice: also set as " + previous->second + LineSuffix(it->first));
          continue;
        }
        Problems problems;
        SetFromNode(*key->second, value, path, config_, problems);
        for (Problem& p : problems) Error(std::move(p.path), source, p.message + LineSuffix(value));
        sources_[key->second->path] = source;
      } else if (auto section = schema_.children.find(path); section != schema_.children.end()) {
        if (value.IsNull()) continue;
        if (!value.IsMap()) {
          Error(path, source, "expected a mapping (section), got " + DescribeNode(value) + LineSuffix(value));
          continue;
        }
        WalkSection(value, path, source, set_at);
      } else {
        Error(path, source, UnknownKeyMessage(name, schema_.children.at(prefix)) + LineSuffix(it->first));
      }
    }
  }

  void ApplyEnvironment(const std::map<std::string, std::string>& env) {
    for (const KeyDef& key : schema_.keys) {
      for (const std::string& name : key.env) {  // the first set name wins
        auto it = env.find(name);
        if (it == env.end()) continue;
        const std::string source = "env:" + name;
        Problems problems;
        SetFromText(key, it->second, config_, problems);
        for (Problem& p : problems) Error(std::move(p.path), source, std::move(p.message));
        sources_[key.path] = source;
        break;
      }
    }
    // Variables read elsewhere than the configuration: by the CLI client,
    // at start (the bootstrap token), by the executors (BZZZ_SECRET_<NAME>,
    // executors/secrets.h) and by the I/O-thread check (base/threads.h).
    static const std::set<std::string, std::less<>> kOtherVariables = {
        "BZZZ_CONFIG", "BZZZ_URL", "BZZZ_TOKEN", "BZZZ_ADMIN_TOKEN", "BZZZ_ABORT_ON_IO_BLOCKING"};
    for (const auto& [name, value] : env) {
      if (name.rfind("BZZZ_", 0) != 0 || schema_.by_env.count(name) || kOtherVariables.count(name) ||
          name.rfind("BZZZ_SECRET_", 0) == 0) {
        continue;
      }
      std::string message = "unknown variable, ignored";
      std::string nearest = NearestName(name, schema_.env_names);
      if (!nearest.empty()) message += "; did you mean " + nearest + "?";
      result_.warnings.push_back({"", "env:" + name, message});
    }
  }

  void ApplyOverrides(const std::vector<std::pair<std::string, std::string>>& overrides) {
    for (const auto& [path, text] : overrides) {
      auto key = schema_.by_path.find(path);
      if (key == schema_.by_path.end()) {
        auto alias = schema_.by_file_path.find(path);
        if (alias != schema_.by_file_path.end()) {
          Error(path, "flag", "unknown key; use " + Quote(alias->second->path));
        } else {
          Error(path, "flag", UnknownKeyMessage(path, schema_.paths));
        }
        continue;
      }
      Problems problems;
      SetFromText(*key->second, text, config_, problems);
      for (Problem& p : problems) Error(std::move(p.path), "flag", std::move(p.message));
      sources_[path] = "flag";
    }
  }

  // Rules that involve several keys, checked on the merged result.
  void ValidateCombinations() {
    const Config& c = config_;
    auto fail = [this](const std::string& path, std::string message) {
      Error(path, SourceOf(path), std::move(message));
    };
    auto ms = [](Millis d) { return HumanDuration(d.count()); };

    const AutoscalingConfig& as = c.agents.autoscaling;
    if (as.max_agents < as.min_agents) {
      fail("agents.autoscaling.max_agents", "must be >= agents.autoscaling.min_agents (" +
                                                std::to_string(as.min_agents) + "), got " +
                                                std::to_string(as.max_agents));
    }
    const PoolConfig& pool = c.storage.pool;
    if (pool.max_connections < pool.min_connections) {
      fail("storage.pool.max_connections", "must be >= storage.pool.min_connections (" +
                                               std::to_string(pool.min_connections) + "), got " +
                                               std::to_string(pool.max_connections));
    }
    const OperationsConfig& ops = c.operations;
    if (ops.memory_degraded_ratio > ops.memory_unhealthy_ratio) {
      fail("operations.memory_degraded_ratio", "must be <= operations.memory_unhealthy_ratio (" +
                                                   ShortestNumber(ops.memory_unhealthy_ratio) + "), got " +
                                                   ShortestNumber(ops.memory_degraded_ratio));
    }
    if (ops.drain_timeout > ops.shutdown_timeout) {
      fail("operations.drain_timeout", "must not exceed operations.shutdown_timeout (" +
                                           ms(ops.shutdown_timeout) +
                                           "), since draining is part of shutdown");
    }
    // Followers would time out between two heartbeats and churn elections.
    if (c.election.election_timeout <= c.election.heartbeat_interval) {
      fail("election.election_timeout",
           "must be greater than election.heartbeat_interval (" + ms(c.election.heartbeat_interval) + ")");
    }
    if (c.p2p.peer_expiry <= c.p2p.presence_interval) {
      fail("p2p.peer_expiry", "must be greater than p2p.presence_interval (" + ms(c.p2p.presence_interval) +
                                  "), or live peers expire between announcements");
    }
    if (c.dht.provider_ttl <= c.dht.provider_refresh) {
      fail("dht.provider_ttl", "must be greater than dht.provider_refresh (" + ms(c.dht.provider_refresh) +
                                   "), or live providers expire between refreshes");
    }
    if (c.dht.record_ttl <= c.dht.provider_refresh) {
      fail("dht.record_ttl", "must be greater than dht.provider_refresh (" + ms(c.dht.provider_refresh) +
                                 "), or records expire between re-puts");
    }
    if (c.agents.heartbeat_interval * 2 > c.tasks.lease_duration) {
      fail("agents.heartbeat_interval",
           "must be at most half of tasks.lease_duration (" + ms(c.tasks.lease_duration) +
               "): agents renew their leases every heartbeat");
    }
    if (c.tasks.retry_backoff_max < c.tasks.retry_backoff_base) {
      fail("tasks.retry_backoff_max",
           "must be >= tasks.retry_backoff_base (" + ms(c.tasks.retry_backoff_base) + ")");
    }
    if (c.security.rate_limit.trust_forwarded_headers && c.security.rate_limit.trusted_proxies.empty()) {
      fail("security.rate_limit.trusted_proxies",
           "required when security.rate_limit.trust_forwarded_headers: forwarded headers are believed only from "
           "the proxies listed here");
    }
    if (c.security.oidc.enabled) {
      if (c.security.oidc.issuer.empty()) fail("security.oidc.issuer", "required when security.oidc.enabled");
      if (c.security.oidc.audience.empty())
        fail("security.oidc.audience", "required when security.oidc.enabled");
      // Browser sign-in needs all three or none.
      const auto& o = c.security.oidc;
      if (!o.client_id.empty() || !o.client_secret.empty() || !o.redirect_uri.empty()) {
        if (o.client_id.empty()) fail("security.oidc.client_id", "required for browser sign-in (client_secret or redirect_uri is set)");
        if (o.client_secret.empty()) fail("security.oidc.client_secret", "required for browser sign-in (client_id or redirect_uri is set)");
        if (o.redirect_uri.empty()) fail("security.oidc.redirect_uri", "required for browser sign-in: this node's /auth/callback URL as registered with the provider");
      }
    }
    if (c.storage.backend == "postgres") {
      if (c.storage.postgres.host.empty())
        fail("storage.postgres.host", "required when storage.backend is postgres");
      if (c.storage.postgres.database.empty()) {
        fail("storage.postgres.database", "required when storage.backend is postgres");
      }
    }
    bool uses_redis =
        std::find(c.cache.layers.begin(), c.cache.layers.end(), "redis") != c.cache.layers.end();
    if (uses_redis && c.cache.redis.host.empty())
      fail("cache.redis.host", "required when cache.layers has redis");
    if (c.cache.redis.pool.max_connections < c.cache.redis.pool.min_connections)
      fail("cache.redis.pool.max_connections", "must be >= cache.redis.pool.min_connections (" +
                                                   std::to_string(c.cache.redis.pool.min_connections) + ")");
  }

  LoadResult& result_;
  const Schema& schema_;
  Config config_;
  std::map<std::string, std::string> sources_;  // canonical path -> source of its current value
  bool has_marks_ = false;
};

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

Json ValueToJson(const KeyDef& key, Config& config, bool mask_secrets) {
  FieldRef field = key.field(config);
  return std::visit(
      [&](auto* value) -> Json {
        using T = std::remove_cv_t<std::remove_pointer_t<decltype(value)>>;
        if constexpr (std::is_same_v<T, std::string>) {
          if (key.secret && mask_secrets && !value->empty()) return "***";
          return *value;
        } else if constexpr (std::is_same_v<T, Millis>) {
          return std::to_string(value->count()) + "ms";
        } else if constexpr (std::is_same_v<T, std::vector<ApiToken>>) {
          Json list = Json::array();
          for (const ApiToken& t : *value) {
            // A bare SHA-256 of a token can be tested offline against
            // guesses: masked like any secret.
            Json item{{"name", t.name}};
            if (!t.token_hash.empty()) item["token_hash"] = mask_secrets ? std::string("***") : t.token_hash;
            if (!t.token_sha256.empty()) item["token_sha256"] = mask_secrets ? std::string("***") : t.token_sha256;
            item["roles"] = t.roles;
            list.push_back(std::move(item));
          }
          return list;
        } else if constexpr (std::is_same_v<T, std::vector<RoleDefinition>>) {
          Json list = Json::array();
          for (const RoleDefinition& r : *value)
            list.push_back(Json{{"name", r.name}, {"permissions", r.permissions}});
          return list;
        } else {
          return Json(*value);
        }
      },
      field);
}

Json BuildDocument(const Config& config, bool mask_secrets) {
  Config copy = config;  // accessors hand out mutable pointers; read from a copy
  Json doc = Json::object();
  for (const KeyDef& key : GetSchema().keys) {
    Json* node = &doc;
    std::size_t start = 0;
    for (std::size_t dot = key.path.find('.'); dot != std::string::npos; dot = key.path.find('.', start)) {
      node = &(*node)[key.path.substr(start, dot - start)];
      start = dot + 1;
    }
    (*node)[key.path.substr(start)] = ValueToJson(key, copy, mask_secrets);
  }
  return doc;
}

void EmitYaml(YAML::Emitter& out, const Json& value) {
  switch (value.type()) {
    case Json::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [name, item] : value.items()) {
        out << YAML::Key << name << YAML::Value;
        EmitYaml(out, item);
      }
      out << YAML::EndMap;
      return;
    case Json::value_t::array: {
      bool scalars = std::all_of(value.begin(), value.end(), [](const Json& v) { return v.is_primitive(); });
      if (scalars) out << YAML::Flow;
      out << YAML::BeginSeq;
      for (const Json& item : value) EmitYaml(out, item);
      out << YAML::EndSeq;
      return;
    }
    // Always quoted so that strings like "", "~" or "null" load back as strings.
    case Json::value_t::string:
      out << YAML::DoubleQuoted << value.get<std::string>();
      return;
    case Json::value_t::boolean:
      out << (value.get<bool>() ? "true" : "false");
      return;
    case Json::value_t::number_integer:
      out << value.get<std::int64_t>();
      return;
    case Json::value_t::number_unsigned:
      out << value.get<std::uint64_t>();
      return;
    case Json::value_t::number_float:
      out << ShortestNumber(value.get<double>());
      return;
    default:
      out << YAML::Null;
      return;
  }
}

// The default of a key as text that the environment accepts back.
std::string DefaultText(const KeyDef& key, Config& defaults) {
  FieldRef field = key.field(defaults);
  switch (key.kind) {
    case Kind::kDuration:
      return HumanDuration(std::get<Millis*>(field)->count());
    case Kind::kSize:
      return HumanBytes(*std::get<std::size_t*>(field));
    case Kind::kStringList:
    case Kind::kEnumList:
      return Join(*std::get<std::vector<std::string>*>(field), ",");
    case Kind::kDouble:
      return ShortestNumber(*std::get<double*>(field));
    case Kind::kApiTokens:
    case Kind::kRoles:
      return ValueToJson(key, defaults, false).dump();
    default: {
      Json value = ValueToJson(key, defaults, false);
      return value.is_string() ? value.get<std::string>() : value.dump();
    }
  }
}

}  // namespace

LoadResult LoadConfig(const LoadOptions& options) {
  LoadResult result;
  try {
    Loader(result).Run(options);
  } catch (const std::exception& e) {
    result.errors.push_back({"", options.file ? "file:" + *options.file : "default",
                             std::string("internal error while loading the configuration: ") + e.what()});
  } catch (...) {
    result.errors.push_back({"", "default", "internal error while loading the configuration"});
  }
  return result;
}

std::map<std::string, std::string> EnvironmentSnapshot() {
  std::map<std::string, std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    std::size_t eq = text.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    env.emplace(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
  }
  return env;
}

std::string RenderConfig(const Config& config, RenderFormat format, bool mask_secrets) {
  Json doc = BuildDocument(config, mask_secrets);
  if (format == RenderFormat::kJson) return doc.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
  YAML::Emitter out;
  out.SetIndent(2);
  EmitYaml(out, doc);
  return std::string(out.c_str()) + "\n";
}

std::vector<KeyInfo> DescribeKeys() {
  Config defaults;
  std::vector<KeyInfo> keys;
  for (const KeyDef& key : GetSchema().keys) {
    KeyInfo info;
    info.path = key.path;
    info.type = TypeName(key);
    info.default_value = DefaultText(key, defaults);
    info.env = key.env;
    info.secret = key.secret;
    info.description = key.description;
    if (!key.file_alias.empty()) info.description += " nO alias: " + key.file_alias + ".";
    keys.push_back(std::move(info));
  }
  return keys;
}

std::optional<std::int64_t> ParseDurationMs(std::string_view text) { return ParseDuration(text); }

}  // namespace bzzz::config
