#include "tasks/codec.h"

#include <algorithm>
#include <charconv>

#include "base/json.h"

namespace bzzz::tasks {

using nlohmann::json;

namespace {

// Inputs and results are JSON text; the document embeds them as JSON.
json Embed(const std::string& text) {
  if (text.empty()) return nullptr;
  json j = ParseJson(text);
  return j.is_discarded() ? json(text) : j;
}

std::string Unembed(const json& j) { return j.is_null() ? std::string() : DumpJson(j); }

// Calls fn(field, name, value) for each string value of the input fields
// that carry secrets: `env` (command, llm) and `headers` (http).
template <typename Fn>
Status ForEachSecret(json& input, Fn&& fn) {
  if (!input.is_object()) return Status::Ok();
  for (const char* field : {"env", "headers"}) {
    auto it = input.find(field);
    if (it == input.end() || !it->is_object()) continue;
    for (auto& [name, value] : it->items()) {
      if (!value.is_string()) continue;
      if (Status s = fn(std::string_view(field), name, value); !s.ok()) return s;
    }
  }
  return Status::Ok();
}

std::string SealContext(const std::string& task_id, std::string_view field, const std::string& name) {
  return task_id + "/" + std::string(field) + "/" + name;
}

// JSON text as Embed would embed it: as it is when ParseJson takes it.
void AppendEmbedded(std::string& out, const std::string& text) {
  if (text.empty()) {
    out += "null";
  } else if (JsonShapeProblem(text, CurrentJsonLimits()).empty() && json::accept(text)) {
    out += text;
  } else {
    AppendJsonString(out, text);
  }
}

class DocWriter {
 public:
  explicit DocWriter(std::string& out) : out_(out) { out_.push_back('{'); }
  void Key(std::string_view k) {
    if (!first_) out_.push_back(',');
    first_ = false;
    out_.push_back('"');
    out_.append(k);
    out_ += "\":";
  }
  void Str(std::string_view k, std::string_view v) {
    Key(k);
    AppendJsonString(out_, v);
  }
  void Int(std::string_view k, std::int64_t v) {
    Key(k);
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, v).ptr;
    out_.append(digits, end);
  }
  void Bool(std::string_view k, bool v) {
    Key(k);
    out_ += v ? "true" : "false";
  }
  void Embedded(std::string_view k, const std::string& text) {
    Key(k);
    AppendEmbedded(out_, text);
  }
  void End() { out_.push_back('}'); }
  // "k":[...], each item written by `write(out, item)`.
  template <typename Items, typename Write>
  void Array(std::string_view k, const Items& items, Write write) {
    Key(k);
    out_.push_back('[');
    bool first = true;
    for (const auto& item : items) {
      if (!first) out_.push_back(',');
      first = false;
      write(out_, item);
    }
    out_.push_back(']');
  }

 private:
  std::string& out_;
  bool first_ = true;
};

json AttemptToJson(const Attempt& a) {
  return {{"number", a.number},           {"agent_id", a.agent_id},
          {"node_id", a.node_id},         {"state", AttemptStateName(a.state)},
          {"assigned_ms", a.assigned_ms}, {"started_ms", a.started_ms},
          {"finished_ms", a.finished_ms}, {"lease_expiry_ms", a.lease_expiry_ms},
          {"result", Embed(a.result)},    {"error", a.error}};
}

}  // namespace

json TaskToApiJson(const Task& t) {
  json j = TaskToJson(t);
  (void)ForEachSecret(j["input"], [](std::string_view, const std::string&, json& value) {
    value = "***";
    return Status::Ok();
  });
  return j;
}

bool InputMayCarrySecrets(std::string_view input) {
  return input.find("\"env\"") != std::string_view::npos ||
         input.find("\"headers\"") != std::string_view::npos || input.find('\\') != std::string_view::npos;
}

std::string TaskDocument(const Task& t) {
  std::string out;
  // About what the fixed fields, an attempt and an event take, so that the
  // document is built in one allocation.
  out.reserve(1024 + t.input.size() + t.result.size() + 320 * t.attempts.size() + 128 * t.events.size());
  DocWriter d(out);
  d.Str("id", t.id);
  d.Str("idempotency_key", t.idempotency_key);
  d.Str("executor", t.executor);
  d.Embedded("input", t.input);
  d.Int("priority", t.priority);
  d.Array("capabilities", t.capabilities,
          [](std::string& o, const std::string& c) { AppendJsonString(o, c); });
  d.Str("role", t.role);
  d.Int("timeout_ms", t.timeout_ms);
  d.Int("max_attempts", t.max_attempts);
  d.Str("project", t.project);
  d.Str("name", t.name);
  d.Str("ucxl_address", t.UcxlAddress());
  d.Str("state", TaskStateName(t.state));
  d.Array("attempts", t.attempts, [](std::string& o, const Attempt& a) {
    DocWriter ad(o);
    ad.Int("number", a.number);
    ad.Str("agent_id", a.agent_id);
    ad.Str("node_id", a.node_id);
    ad.Str("state", AttemptStateName(a.state));
    ad.Int("assigned_ms", a.assigned_ms);
    ad.Int("started_ms", a.started_ms);
    ad.Int("finished_ms", a.finished_ms);
    ad.Int("lease_expiry_ms", a.lease_expiry_ms);
    ad.Embedded("result", a.result);
    ad.Str("error", a.error);
    ad.End();
  });
  d.Int("attempt_base", t.attempt_base);
  d.Embedded("result", t.result);
  d.Str("error", t.error);
  d.Str("submitter", t.submitter);
  d.Str("owner_node", t.owner_node);
  d.Str("assigned_agent", t.assigned_agent);
  d.Int("lease_expiry_ms", t.lease_expiry_ms);
  d.Str("hmmm_room", t.hmmm_room);
  d.Int("created_ms", t.created_ms);
  d.Int("updated_ms", t.updated_ms);
  d.Int("finished_ms", t.finished_ms);
  d.Int("not_before_ms", t.not_before_ms);
  d.Bool("cancel_requested", t.cancel_requested);
  d.Bool("escalate_requested", t.escalate_requested);
  d.Int("seq", t.seq);
  d.Array("events", t.events, [](std::string& o, const TaskEvent& e) {
    DocWriter ed(o);
    ed.Int("at_ms", e.at_ms);
    ed.Str("type", e.type);
    ed.Str("detail", e.detail);
    ed.Int("attempt", e.attempt);
    ed.End();
  });
  d.Int("event_count", t.event_count);
  d.End();
  return out;
}

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
          {"submitter", t.submitter},
          {"owner_node", t.owner_node},
          {"assigned_agent", t.assigned_agent},
          {"lease_expiry_ms", t.lease_expiry_ms},
          {"hmmm_room", t.hmmm_room},
          {"created_ms", t.created_ms},
          {"updated_ms", t.updated_ms},
          {"finished_ms", t.finished_ms},
          {"not_before_ms", t.not_before_ms},
          {"cancel_requested", t.cancel_requested},
          {"escalate_requested", t.escalate_requested},
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
    t.priority = GetInt<int>(j.at("priority"));
    t.capabilities = j.at("capabilities").get<std::vector<std::string>>();
    t.role = j.at("role").get<std::string>();
    t.timeout_ms = GetInt<std::int64_t>(j.at("timeout_ms"));
    t.max_attempts = GetInt<int>(j.at("max_attempts"));
    t.project = j.at("project").get<std::string>();
    t.name = j.at("name").get<std::string>();
    auto state = ParseTaskState(j.at("state").get<std::string>());
    if (!state) return InvalidArgument("task " + t.id + ": unknown state");
    t.state = *state;
    for (const auto& ja : j.at("attempts")) {
      Attempt a;
      a.number = GetInt<int>(ja.at("number"));
      a.agent_id = ja.at("agent_id").get<std::string>();
      a.node_id = ja.at("node_id").get<std::string>();
      auto as = ParseAttemptState(ja.at("state").get<std::string>());
      if (!as) return InvalidArgument("task " + t.id + ": unknown attempt state");
      a.state = *as;
      a.assigned_ms = GetInt<std::int64_t>(ja.at("assigned_ms"));
      a.started_ms = GetInt<std::int64_t>(ja.at("started_ms"));
      a.finished_ms = GetInt<std::int64_t>(ja.at("finished_ms"));
      a.lease_expiry_ms = GetInt<std::int64_t>(ja.at("lease_expiry_ms"));
      a.result = Unembed(ja.at("result"));
      a.error = ja.at("error").get<std::string>();
      t.attempts.push_back(std::move(a));
    }
    t.attempt_base = GetInt<int>(j.at("attempt_base"));
    t.result = Unembed(j.at("result"));
    t.error = j.at("error").get<std::string>();
    if (auto it = j.find("submitter"); it != j.end()) {  // absent in tasks written before ownership
      t.submitter = it->get<std::string>();
    }
    t.owner_node = j.at("owner_node").get<std::string>();
    t.assigned_agent = j.at("assigned_agent").get<std::string>();
    t.lease_expiry_ms = GetInt<std::int64_t>(j.at("lease_expiry_ms"));
    t.hmmm_room = j.at("hmmm_room").get<std::string>();
    t.created_ms = GetInt<std::int64_t>(j.at("created_ms"));
    t.updated_ms = GetInt<std::int64_t>(j.at("updated_ms"));
    t.finished_ms = GetInt<std::int64_t>(j.at("finished_ms"));
    t.not_before_ms = GetInt<std::int64_t>(j.at("not_before_ms"));
    t.cancel_requested = j.at("cancel_requested").get<bool>();
    if (auto it = j.find("escalate_requested"); it != j.end()) {  // absent in tasks written before HMMM
      t.escalate_requested = it->get<bool>();
    }
    t.seq = GetInt<std::int64_t>(j.at("seq"));
    t.event_count = GetInt<std::int64_t>(j.at("event_count"));
    for (const auto& je : j.at("events")) {
      t.events.push_back(TaskEvent{GetInt<std::int64_t>(je.at("at_ms")), je.at("type").get<std::string>(),
                                   je.at("detail").get<std::string>(), GetInt<int>(je.at("attempt"))});
    }
    return t;
  } catch (const json::exception& e) {
    return InvalidArgument(std::string("task document: ") + e.what());
  }
}

Result<SubmitRequest> ParseSubmitBody(std::string_view body, std::string_view header_key) {
  std::string why;
  const json j = ParseJson(body, &why);
  if (j.is_discarded()) return InvalidArgument("body: " + why);
  if (!j.is_object()) return InvalidArgument("body: must be a JSON object");
  static const char* kKnown[] = {"executor",     "input",      "idempotency_key", "priority",
                                 "max_attempts", "timeout_ms", "project",         "name",
                                 "capabilities", "role"};
  for (const auto& item : j.items()) {
    const std::string& k = item.key();  // a named reference: clang 14 cannot capture a structured binding
    if (std::none_of(std::begin(kKnown), std::end(kKnown), [&](const char* n) { return k == n; })) {
      return InvalidArgument("body." + k + ": unknown field");
    }
  }
  SubmitRequest r;
  const auto str = [&](const char* key, std::string& out) -> Status {
    auto it = j.find(key);
    if (it == j.end()) return Status::Ok();
    if (!it->is_string()) return InvalidArgument(std::string("body.") + key + ": must be a string");
    out = it->get<std::string>();
    return Status::Ok();
  };
  const auto integer = [&](const char* key, auto& out) -> Status {
    auto it = j.find(key);
    if (it == j.end()) return Status::Ok();
    if (!it->is_number_integer()) return InvalidArgument(std::string("body.") + key + ": must be an integer");
    out = it->get<long long>();
    return Status::Ok();
  };
  auto exec = j.find("executor");
  if (exec == j.end() || !exec->is_string() || exec->get<std::string>().empty()) {
    return InvalidArgument("body.executor: required string (builtin, command, http, llm)");
  }
  r.executor = exec->get<std::string>();
  if (auto in = j.find("input"); in != j.end()) r.input = in->dump();
  for (auto [key, out] : {std::pair{"idempotency_key", &r.idempotency_key},
                          {"project", &r.project},
                          {"name", &r.name},
                          {"role", &r.role}}) {
    if (Status s = str(key, *out); !s.ok()) return s;
  }
  long long priority = 0, max_attempts = -1, timeout = -1;
  if (Status s = integer("priority", priority); !s.ok()) return s;
  if (Status s = integer("max_attempts", max_attempts); !s.ok()) return s;
  if (Status s = integer("timeout_ms", timeout); !s.ok()) return s;
  if (priority < -1000 || priority > 1000) return InvalidArgument("body.priority: must be -1000..1000");
  r.priority = static_cast<int>(priority);
  if (j.contains("max_attempts")) {
    if (max_attempts < 1 || max_attempts > 1000) return InvalidArgument("body.max_attempts: must be 1..1000");
    r.max_attempts = static_cast<int>(max_attempts);
  }
  if (j.contains("timeout_ms")) {
    if (timeout < 1 || timeout > 86400000) return InvalidArgument("body.timeout_ms: must be 1..86400000");
    r.timeout_ms = timeout;
  }
  if (auto caps = j.find("capabilities"); caps != j.end()) {
    if (!caps->is_array()) return InvalidArgument("body.capabilities: must be an array of strings");
    for (const auto& c : *caps) {
      if (!c.is_string()) return InvalidArgument("body.capabilities: must be an array of strings");
      r.capabilities.push_back(c.get<std::string>());
    }
  }
  if (!header_key.empty()) {
    // Header bytes are not checked by any JSON parser: printable ASCII only,
    // or the stored task could not be written as JSON later.
    if (header_key.size() > 255 ||
        !std::all_of(header_key.begin(), header_key.end(), [](char c) { return c >= 0x21 && c <= 0x7e; })) {
      return InvalidArgument("Idempotency-Key header: 1..255 printable ASCII characters");
    }
    if (!r.idempotency_key.empty() && r.idempotency_key != header_key) {
      return InvalidArgument("Idempotency-Key header and body.idempotency_key differ");
    }
    r.idempotency_key = std::string(header_key);
  }
  return r;
}

TaskRow ToRow(const Task& t, const executors::SecretSealer* sealer) {
  TaskRow row;
  row.id = t.id;
  row.idempotency_key = t.idempotency_key;
  row.state = std::string(TaskStateName(t.state));
  row.executor = t.executor;
  row.project = t.project;
  row.priority = t.priority;
  row.created_ms = t.created_ms;
  row.updated_ms = t.updated_ms;
  row.seq = t.seq;
  // The direct writer unless secrets may need sealing.
  if (sealer == nullptr || !InputMayCarrySecrets(t.input)) {
    row.doc = TaskDocument(t);
    return row;
  }
  json doc = TaskToJson(t);
  if (sealer) {
    (void)ForEachSecret(doc["input"], [&](std::string_view field, const std::string& name, json& value) {
      const auto& plain = value.get_ref<const std::string&>();
      // A reference is not a secret; anything else (even text that looks
      // sealed) is sealed, so every stored value opens to what was given.
      if (plain.rfind(executors::kSecretScheme, 0) != 0)
        value = sealer->Seal(plain, SealContext(t.id, field, name));
      return Status::Ok();
    });
  }
  row.doc = DumpJson(doc);  // never throws: output bytes become U+FFFD
  return row;
}

Result<Task> FromRow(const TaskRow& row, const executors::SecretSealer* sealer) {
  json j = ParseJson(row.doc);
  if (j.is_discarded()) return InvalidArgument("task " + row.id + ": stored document is not JSON");
  auto input = j.find("input");
  if (input != j.end()) {
    Status s =
        ForEachSecret(*input, [&](std::string_view field, const std::string& name, json& value) -> Status {
          const auto& stored = value.get_ref<const std::string&>();
          if (!executors::SecretSealer::IsSealed(stored))
            return Status::Ok();  // a reference, or written before sealing
          if (!sealer) return FailedPrecondition("no key to open its sealed secrets");
          auto plain = sealer->Open(stored, SealContext(row.id, field, name));
          if (!plain.ok())
            return FailedPrecondition(std::string(field) + "." + name + ": " + plain.status().message());
          value = std::move(*plain);
          return Status::Ok();
        });
    if (!s.ok()) return FailedPrecondition("task " + row.id + ": " + s.message());
  }
  auto t = TaskFromJson(j);
  // The column is authoritative: a takeover may have dropped the key.
  if (t.ok()) t->idempotency_key = row.idempotency_key;
  return t;
}

Result<Task> FromRowSealed(const TaskRow& row) {
  json j = ParseJson(row.doc);
  if (j.is_discarded()) return InvalidArgument("task " + row.id + ": stored document is not JSON");
  auto t = TaskFromJson(j);
  if (t.ok()) t->idempotency_key = row.idempotency_key;
  return t;
}

std::string RowToCacheValue(const TaskRow& row) {
  return json{{"v", 1},
              {"id", row.id},
              {"key", row.idempotency_key},
              {"state", row.state},
              {"executor", row.executor},
              {"project", row.project},
              {"priority", row.priority},
              {"created_ms", row.created_ms},
              {"updated_ms", row.updated_ms},
              {"seq", row.seq},
              {"doc", row.doc}}
      .dump();
}

std::optional<TaskRow> RowFromCacheValue(std::string_view value) {
  const json j = ParseJson(value);
  if (!j.is_object() || j.value("v", 0) != 1) return std::nullopt;
  try {
    TaskRow row;
    row.id = j.at("id").get<std::string>();
    row.idempotency_key = j.at("key").get<std::string>();
    row.state = j.at("state").get<std::string>();
    row.executor = j.at("executor").get<std::string>();
    row.project = j.at("project").get<std::string>();
    row.priority = j.at("priority").get<int>();
    row.created_ms = j.at("created_ms").get<std::int64_t>();
    row.updated_ms = j.at("updated_ms").get<std::int64_t>();
    row.seq = j.at("seq").get<std::int64_t>();
    row.doc = j.at("doc").get<std::string>();
    return row;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

}  // namespace bzzz::tasks
