// AuditLog: the node's tamper-evident record of who was refused and who
// changed what.
//
// What is recorded (docs/security.md, "Audit log"):
//   auth_failure       a request refused with 401 (no, bad or expired credential)
//   permission_denied  a request refused with 403 (a known identity without the permission)
//   admin_action       every mutating request to an administrative route (a
//                      permission "*:admin", or of admin, dlq, agents, cluster,
//                      election, keys, tokens, audit), whatever its outcome
//   and what components record themselves (AuditLog::Record): membership
//   admissions, the node's start and stop.
//
// Entries form a hash chain signed with the node key (audit/chain.h),
// written through the store by one owned thread in batches; Record() never
// blocks and may be called from an HTTP I/O thread. Refusals are what a
// stranger can cause at will, so they are rate-limited (`refusals_per_second`
// with a burst): what exceeds the limit is counted in the next refusal
// entry recorded (details.suppressed) and in no_audit_dropped_total{reason=
// "rate"}, never silently lost. Admin actions are never rate-limited; a full
// queue (the store down for long) drops with reason "queue_full".
//
// Secrets never reach the log: targets and details pass SHHH's redaction.
//
// Routes: GET /api/v1/audit (audit:read) lists entries with filters;
// GET /api/v1/audit/verify (audit:read) verifies the whole chain.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "audit/chain.h"
#include "audit/repository.h"
#include "base/status.h"
#include "http/message.h"
#include "ops/component.h"
#include "p2p/identity.h"

namespace prometheus {
class Registry;
}

namespace bzzz::audit {

struct AuditEvent {
  std::string kind;        // see above; bounded set (a label of no_audit_entries_total)
  std::string principal;   // "system" for the node's own actions
  std::string action;
  std::string target;
  std::string outcome;
  std::string client;
  std::string request_id;
  std::string details = "{}";  // a JSON object
};

// An action of the node itself (principal "system", outcome "ok").
AuditEvent SystemEvent(std::string action, std::string details = "{}");

struct AuditOptions {
  std::size_t queue_limit = 10000;
  double refusals_per_second = 20;  // auth_failure and permission_denied entries
  double refusal_burst = 200;
  std::size_t batch = 256;          // entries per transaction
};

class AuditLog final : public ops::Component {
 public:
  // Continues the chain from the store's head.
  static Result<std::shared_ptr<AuditLog>> Start(std::shared_ptr<AuditRepository> repository,
                                                 p2p::NodeIdentity identity, AuditOptions options,
                                                 prometheus::Registry* metrics);
  ~AuditLog() override;

  // Queues an entry; false when it was dropped (rate or queue limit, or
  // after Stop). Never blocks.
  bool Record(AuditEvent event);
  // What the HTTP pipeline tells: 401, 403, and admin actions (above).
  void ObserveRequest(const http::RequestRecord& record);
  // Waits until everything recorded before the call is in the store.
  Status Flush(std::chrono::milliseconds timeout);
  // Flushes (up to 5 s) and ends the writer; later Record() calls drop.
  void Stop();

  AuditHead Head() const;
  const p2p::PublicKey& public_key() const;

  std::string_view Name() const override { return "audit"; }
  Status RegisterRoutes(http::Router& router) override;
  std::vector<ops::HealthCheckSpec> HealthChecks(const config::OperationsConfig& ops) override;
  std::vector<ops::ShutdownStep> ShutdownSteps(const config::Config& config) override;

  struct Impl;

 private:
  explicit AuditLog(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;  // shared with its routes
};

// Whether a request to `route` with `method` and `permission` is an admin
// action (above).
bool IsAdminAction(std::string_view method, std::string_view permission);

}  // namespace bzzz::audit
