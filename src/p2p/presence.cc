#include "p2p/p2p.h"

#include <nlohmann/json.hpp>

#include "base/json.h"

namespace bzzz::p2p {

using nlohmann::json;

std::string PresenceToJson(const Presence& p, std::string_view node_id, std::string_view node_name) {
  json j = {{"node_id", node_id},
            {"name", node_name},
            {"agent_id", p.agent_id},
            {"role", p.role},
            {"capabilities", p.capabilities},
            {"models", p.models},
            {"http_endpoint", p.http_endpoint},
            {"available_for_work", p.available_for_work},
            {"current_tasks", p.current_tasks},
            {"max_tasks", p.max_tasks},
            {"status", p.status}};
  if (!p.direct_endpoint.empty()) j["direct_endpoint"] = p.direct_endpoint;
  if (!p.version.empty()) j["version"] = p.version;
  if (!p.health.empty()) j["health"] = p.health;
  if (p.peers >= 0) j["peers"] = p.peers;
  return j.dump();
}

Result<Presence> PresenceFromJson(std::string_view text, std::string* node_name) {
  const json j = ParseJson(text);
  if (!j.is_object()) return InvalidArgument("presence is not a JSON object");
  Presence p;
  try {
    p.agent_id = j.value("agent_id", "");
    p.role = j.value("role", "");
    p.capabilities = j.value("capabilities", std::vector<std::string>{});
    p.models = j.value("models", std::vector<std::string>{});
    p.http_endpoint = j.value("http_endpoint", "");
    p.available_for_work = j.value("available_for_work", false);
    p.current_tasks = j.value("current_tasks", 0);
    p.max_tasks = j.value("max_tasks", 0);
    p.status = j.value("status", "");
    p.direct_endpoint = j.value("direct_endpoint", "");
    p.version = j.value("version", "");
    p.health = j.value("health", "");
    p.peers = j.value("peers", -1);
    if (node_name) *node_name = j.value("name", "");
  } catch (const json::exception& e) {
    return InvalidArgument(std::string("presence field of the wrong type: ") + e.what());
  }
  return p;
}

}  // namespace bzzz::p2p
