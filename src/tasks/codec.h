// Task ⇄ JSON (the API's representation and the store's doc column), and
// Task ⇄ TaskRow. Includes nlohmann/json: for .cc files only.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "executors/secrets.h"
#include "tasks/repository.h"
#include "tasks/core.h"
#include "tasks/task.h"

namespace bzzz::tasks {

nlohmann::json TaskToJson(const Task& task);
// DumpJson(TaskToJson(task)) written directly, without building the tree:
// the same object (keys in another order), with the input and result JSON
// texts copied in as they are when ParseJson would take them (else as JSON
// strings, as TaskToJson embeds them). The task writer serializes every
// changed task with it (the tree took most of the writer's time).
std::string TaskDocument(const Task& task);
// Whether `input` may hold a field that carries secrets (`env`, `headers`;
// any escape could spell them): conservative, true when unsure. Without
// one, the stored and the API document are TaskDocument as it is.
bool InputMayCarrySecrets(std::string_view input);
// The task as the API shows it: TaskToJson with the fields of the input that
// carry secrets write-only (each value "***"): `env` of command and llm
// tasks, `headers` of http tasks. Executors still get the values.
nlohmann::json TaskToApiJson(const Task& task);
// InvalidArgument with the field at fault when `j` is not what TaskToJson writes.
Result<Task> TaskFromJson(const nlohmann::json& j);

// The body of POST /api/v1/tasks, strictly: unknown fields and wrong types
// are InvalidArgument naming the field. `header_key` is the Idempotency-Key
// header ("" when absent); it must agree with body.idempotency_key.
Result<SubmitRequest> ParseSubmitBody(std::string_view body, std::string_view header_key);

// The store's row of `task`. With a sealer, the secrets of its input given
// in clear are sealed in the row's document (secret:// references stay as
// they are); FromRow opens them again. Without one, they are stored in clear
// and a row with sealed values is FailedPrecondition.
TaskRow ToRow(const Task& task, const executors::SecretSealer* sealer = nullptr);
Result<Task> FromRow(const TaskRow& row, const executors::SecretSealer* sealer = nullptr);
// The task of a row whose sealed values stay sealed: to show a task another
// node sealed (a shared store), never to run it.
Result<Task> FromRowSealed(const TaskRow& row);

// A row as the read cache holds it (a small JSON object), and back:
// nullopt for anything else (a cache value is not trusted to be well formed).
std::string RowToCacheValue(const TaskRow& row);
std::optional<TaskRow> RowFromCacheValue(std::string_view value);

}  // namespace bzzz::tasks
