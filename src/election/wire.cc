#include "election/wire.h"
#include "base/json.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

namespace bzzz::election {

namespace {

using nlohmann::json;

constexpr std::string_view kTypes[] = {"hello",      "heartbeat",      "heartbeat_ack",
                                       "pre_vote",   "pre_vote_reply", "vote",
                                       "vote_reply", "timeout_now",    "transfer_request"};

constexpr std::uint64_t kMaxTerm = std::numeric_limits<std::int64_t>::max();

Status Bad(const std::string& field, const std::string& why) {
  return InvalidArgument("election message field '" + field + "': " + why);
}

Status ReadId(const json& j, const char* field, std::string* out, bool required) {
  auto it = j.find(field);
  if (it == j.end()) return required ? Bad(field, "missing") : Status::Ok();
  if (!it->is_string()) return Bad(field, "not a string");
  *out = it->get<std::string>();
  if (out->size() > kMaxIdBytes) return Bad(field, "longer than 128 bytes");
  return Status::Ok();
}

Status ReadU64(const json& j, const char* field, std::uint64_t* out) {
  auto it = j.find(field);
  if (it == j.end()) return Status::Ok();
  if (!it->is_number_unsigned()) return Bad(field, "not a non-negative integer");
  *out = it->get<std::uint64_t>();
  if (*out > kMaxTerm) return Bad(field, "out of range");
  return Status::Ok();
}

Status ReadBool(const json& j, const char* field, bool* out) {
  auto it = j.find(field);
  if (it == j.end()) return Status::Ok();
  if (!it->is_boolean()) return Bad(field, "not a boolean");
  *out = it->get<bool>();
  return Status::Ok();
}

}  // namespace

std::string EncodeMessage(const Message& m) {
  json j = json::object();
  j["type"] = MessageTypeName(m.type);
  if (!m.to.empty()) j["to"] = m.to;
  if (!m.cluster.empty()) j["cluster"] = m.cluster;
  j["term"] = m.term;
  j["config"] = json::array({m.config.term, m.config.version});
  if (!m.members.empty()) j["members"] = m.members;
  if (m.seq != 0) j["seq"] = m.seq;
  if (m.granted) j["granted"] = true;
  if (m.transfer) j["transfer"] = true;
  const bool hello = m.type == MessageType::kHello;
  if (hello || m.admin_capable) j["admin_capable"] = m.admin_capable;
  if (hello || m.fresh) j["fresh"] = m.fresh;
  if (hello || m.score != 0) j["score"] = m.score;
  if (!m.admin.empty()) j["admin"] = m.admin;
  return j.dump();
}

Result<Message> DecodeMessage(std::string_view bytes) {
  json j = ParseJson(bytes);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument("election message is not a JSON object");
  Message m;
  auto type = j.find("type");
  if (type == j.end() || !type->is_string()) return Bad("type", "missing or not a string");
  const auto name = type->get<std::string>();
  auto known = std::find(std::begin(kTypes), std::end(kTypes), name);
  if (known == std::end(kTypes)) return Bad("type", "unknown '" + name.substr(0, 32) + "'");
  m.type = static_cast<MessageType>(known - std::begin(kTypes));
  if (auto s = ReadId(j, "to", &m.to, false); !s.ok()) return s;
  if (auto s = ReadId(j, "cluster", &m.cluster, false); !s.ok()) return s;
  if (auto s = ReadId(j, "admin", &m.admin, false); !s.ok()) return s;
  if (auto s = ReadU64(j, "term", &m.term); !s.ok()) return s;
  if (auto s = ReadU64(j, "seq", &m.seq); !s.ok()) return s;
  if (auto s = ReadBool(j, "granted", &m.granted); !s.ok()) return s;
  if (auto s = ReadBool(j, "transfer", &m.transfer); !s.ok()) return s;
  if (auto s = ReadBool(j, "admin_capable", &m.admin_capable); !s.ok()) return s;
  if (auto s = ReadBool(j, "fresh", &m.fresh); !s.ok()) return s;
  auto config = j.find("config");
  if (config == j.end() || !config->is_array() || config->size() != 2 || !(*config)[0].is_number_unsigned() ||
      !(*config)[1].is_number_unsigned()) {
    return Bad("config", "must be [term, version] of non-negative integers");
  }
  m.config = ConfigId{(*config)[0].get<std::uint64_t>(), (*config)[1].get<std::uint64_t>()};
  if (m.config.term > kMaxTerm || m.config.version > kMaxTerm) return Bad("config", "out of range");
  if (auto members = j.find("members"); members != j.end()) {
    if (!members->is_array() || members->size() > kMaxMembers)
      return Bad("members", "not an array of up to 1024");
    for (const auto& id : *members) {
      if (!id.is_string() || id.get_ref<const std::string&>().empty() ||
          id.get_ref<const std::string&>().size() > kMaxIdBytes) {
        return Bad("members", "holds something other than a node id");
      }
      m.members.push_back(id.get<std::string>());
    }
    if (!std::is_sorted(m.members.begin(), m.members.end()) ||
        std::adjacent_find(m.members.begin(), m.members.end()) != m.members.end()) {
      return Bad("members", "not sorted and unique");
    }
  }
  if (auto score = j.find("score"); score != j.end()) {
    if (!score->is_number()) return Bad("score", "not a number");
    m.score = score->get<double>();
    if (!std::isfinite(m.score) || m.score < 0 || m.score > 1) return Bad("score", "outside [0, 1]");
  }
  return m;
}

}  // namespace bzzz::election
