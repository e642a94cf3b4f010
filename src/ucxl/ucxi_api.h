// UCXI: the resolver API for UCXL addresses under /ucxi/v1 (SPEC §3.9), on
// top of ucxl::ContextStore.
//
// clang-format off
//   GET    /ucxi/v1/get?address=         ucxl:read   the version the address names
//   PUT    /ucxi/v1/put?address=         ucxl:write  body = content, Content-Type = its type (201)
//   POST   /ucxi/v1/post                 ucxl:write  {"address", "content", "content_type"?, "encoding"?} (201)
//   DELETE /ucxi/v1/delete?address=      ucxl:write  appends a tombstone
//   POST   /ucxi/v1/announce             ucxl:write  {"address"}: provide it in the DHT (202)
//   GET    /ucxi/v1/discover?pattern=    ucxl:read   stored addresses matching a wildcard pattern (+ DHT providers)
//   GET    /ucxi/v1/navigate?address=&steps=N  ucxl:read  N versions forward (N < 0: back; default -1)
//   GET    /ucxi/v1/search?q=&limit=     ucxl:read   latest versions whose metadata or content contain q
//   GET    /ucxi/v1/status               ucxl:read   counts, limits, DHT
// clang-format on
//
// Every answer is an envelope: success {"response": {code, message, data,
// details, request_id, timestamp}}, error {"error": {code, message, details,
// source: "ucxi-server", path, request_id, timestamp, cause}}, with codes
// UCXL-<status>-<NAME> and the HTTP status equal to the code's number; the
// server's own errors on /ucxi/ (401, 403, 404, 405, 413) use it too.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "base/status.h"
#include "config/config.h"
#include "http/router.h"
#include "ops/component.h"
#include "ucxl/context_store.h"
#include "ucxl/repository.h"
#include "ucxl/rewrap.h"

namespace prometheus {
class Registry;
}
namespace bzzz::dht {
class RecordStore;
}

namespace bzzz::ucxl {

// Role encryption of the content (ucxl/role_codec.h), and the re-wrap job
// that follows the key ring (ucxl/rewrap.h). No codec: stored as given.
struct UcxiEncryption {
  std::shared_ptr<ContentCodec> codec;
  std::function<std::uint64_t()> key_generation;  // keys::Keyring::Generation
  RewrapOptions rewrap;
};

class UcxiServices final : public ops::Component {
 public:
  // `records` may be null (no DHT).
  static std::shared_ptr<UcxiServices> Create(std::shared_ptr<ContextRepository> store,
                                              dht::RecordStore* records, const config::Config& config,
                                              prometheus::Registry* metrics, UcxiEncryption encryption = {});
  // The re-wrap job's progress (JSON; "null" without encryption).
  std::string RewrapProgress() const;
  // The store behind the routes (SLURP writes its records through it).
  ContextStore* context() const;
  std::vector<ops::ShutdownStep> ShutdownSteps(const config::Config& config) override;
  ~UcxiServices();
  // Component: the routes above and the "ucxi" status section.
  std::string_view Name() const override { return "ucxi"; }
  Status RegisterRoutes(http::Router& router) override;
  std::vector<std::string> StatusSections() const override { return {"ucxi"}; }
  std::string StatusJson(std::string_view section = "ucxi") const override;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace bzzz::ucxl
