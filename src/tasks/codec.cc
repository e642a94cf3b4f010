#include "tasks/codec.h"

namespace bzzz::tasks {

using nlohmann::json;

namespace {

// Inputs and results are JSON text; the document embeds them as JSON.
json Embed(const std::string& text) {
  if (text.empty()) return nullptr;
  json j = json::parse(text, nullptr, false);
  return j.is_discarded() ? json(text) : j;
}

std::string Unembed(const json& j) { return j.is_null() ? std::string() : j.dump(); }

json AttemptToJson(const Attempt& a) {
  return {{"number", a.number},         {"agent_id", a.agent_id},       {"node_id", a.node_id},
          {"state", AttemptStateName(a.state)}, {"assigned_ms", a.assigned_ms}, {"started_ms", a.started_ms},
          {"finished_ms", a.finished_ms}, {"lease_expiry_ms", a.lease_expiry_ms}, {"result", Embed(a.result)},
          {"error", a.error}};
}

}  // namespace

json TaskToJson(const Task& t) {
  json attempts = json::array();
  for (const auto& a : t.attempts) attempts.push_back(AttemptToJson(a));
  json events = json::array();
  for (const auto& e : t.events) {
    events.push_back({{"at_ms", e.at_ms}, {"type", e.type}, {"detail", e.detail}, {"attempt", e.attempt}});
  }
  return {{"id", t.id},
          {"idempotency_key", t.idempotency_key},
          {"executor", t.executor},
          {"input", Embed(t.input)},
          {"priority", t.priority},
          {"capabilities", t.capabilities},
          {"role", t.role},
          {"timeout_ms", t.timeout_ms},
          {"max_attempts", t.max_attempts},
          {"project", t.project},
          {"name", t.name},
          {"ucxl_address", t.UcxlAddress()},
          {"state", TaskStateName(t.state)},
          {"attempts", std::move(attempts)},
          {"attempt_base", t.attempt_base},
          {"result", Embed(t.result)},
          {"error", t.error},
          {"owner_node", t.owner_node},
          {"assigned_agent", t.assigned_agent},
          {"lease_expiry_ms", t.lease_expiry_ms},
          {"hmmm_room", t.hmmm_room},
          {"created_ms", t.created_ms},
          {"updated_ms", t.updated_ms},
          {"finished_ms", t.finished_ms},
          {"not_before_ms", t.not_before_ms},
          {"cancel_requested", t.cancel_requested},
          {"seq", t.seq},
          {"events", std::move(events)},
          {"event_count", t.event_count}};
}

Result<Task> TaskFromJson(const json& j) {
  try {
    if (!j.is_object()) return InvalidArgument("task: not an object");
    Task t;
    t.id = j.at("id").get<std::string>();
    t.idempotency_key = j.at("idempotency_key").get<std::string>();
    t.executor = j.at("executor").get<std::string>();
    t.input = Unembed(j.at("input"));
    t.priority = j.at("priority").get<int>();
    t.capabilities = j.at("capabilities").get<std::vector<std::string>>();
    t.role = j.at("role").get<std::string>();
    t.timeout_ms = j.at("timeout_ms").get<std::int64_t>();
    t.max_attempts = j.at("max_attempts").get<int>();
    t.project = j.at("project").get<std::string>();
    t.name = j.at("name").get<std::string>();
    auto state = ParseTaskState(j.at("state").get<std::string>());
    if (!state) return InvalidArgument("task " + t.id + ": unknown state");
    t.state = *state;
    for (const auto& ja : j.at("attempts")) {
      Attempt a;
      a.number = ja.at("number").get<int>();
      a.agent_id = ja.at("agent_id").get<std::string>();
      a.node_id = ja.at("node_id").get<std::string>();
      auto as = ParseAttemptState(ja.at("state").get<std::string>());
      if (!as) return InvalidArgument("task " + t.id + ": unknown attempt state");
      a.state = *as;
      a.assigned_ms = ja.at("assigned_ms").get<std::int64_t>();
      a.started_ms = ja.at("started_ms").get<std::int64_t>();
      a.finished_ms = ja.at("finished_ms").get<std::int64_t>();
      a.lease_expiry_ms = ja.at("lease_expiry_ms").get<std::int64_t>();
      a.result = Unembed(ja.at("result"));
      a.error = ja.at("error").get<std::string>();
      t.attempts.push_back(std::move(a));
    }
    t.attempt_base = j.at("attempt_base").get<int>();
    t.result = Unembed(j.at("result"));
    t.error = j.at("error").get<std::string>();
    t.owner_node = j.at("owner_node").get<std::string>();
    t.assigned_agent = j.at("assigned_agent").get<std::string>();
    t.lease_expiry_ms = j.at("lease_expiry_ms").get<std::int64_t>();
    t.hmmm_room = j.at("hmmm_room").get<std::string>();
    t.created_ms = j.at("created_ms").get<std::int64_t>();
    t.updated_ms = j.at("updated_ms").get<std::int64_t>();
    t.finished_ms = j.at("finished_ms").get<std::int64_t>();
    t.not_before_ms = j.at("not_before_ms").get<std::int64_t>();
    t.cancel_requested = j.at("cancel_requested").get<bool>();
    t.seq = j.at("seq").get<std::int64_t>();
    t.event_count = j.at("event_count").get<std::int64_t>();
    for (const auto& je : j.at("events")) {
      t.events.push_back(TaskEvent{je.at("at_ms").get<std::int64_t>(), je.at("type").get<std::string>(),
                                   je.at("detail").get<std::string>(), je.at("attempt").get<int>()});
    }
    return t;
  } catch (const json::exception& e) {
    return InvalidArgument(std::string("task document: ") + e.what());
  }
}

storage::TaskRow ToRow(const Task& t) {
  storage::TaskRow row;
  row.id = t.id;
  row.idempotency_key = t.idempotency_key;
  row.state = std::string(TaskStateName(t.state));
  row.executor = t.executor;
  row.project = t.project;
  row.priority = t.priority;
  row.created_ms = t.created_ms;
  row.updated_ms = t.updated_ms;
  row.seq = t.seq;
  row.doc = TaskToJson(t).dump();
  return row;
}

Result<Task> FromRow(const storage::TaskRow& row) {
  json j = json::parse(row.doc, nullptr, false);
  if (j.is_discarded()) return InvalidArgument("task " + row.id + ": stored document is not JSON");
  return TaskFromJson(j);
}

}  // namespace bzzz::tasks
