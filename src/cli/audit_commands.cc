#include "cli/audit_commands.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "audit/chain.h"
#include "base/hex.h"
#include "base/json.h"
#include "cli/commands.h"
#include "p2p/identity.h"
#include "storage/store.h"

namespace bzzz::cli {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

int PrintReport(const audit::ChainReport& r, const std::string& source, bool as_json) {
  if (as_json) {
    json problems = json::array();
    for (const auto& p : r.problems) problems.push_back({{"seq", p.seq}, {"kind", p.kind}, {"detail", p.detail}});
    std::cout << json{{"ok", r.ok()},
                      {"entries", r.entries},
                      {"first_seq", r.first_seq},
                      {"last_seq", r.last_seq},
                      {"head", {{"seq", r.head.seq}, {"hash", r.head.hash}}},
                      {"problems_total", r.problems_total},
                      {"problems", problems}}
                     .dump(2)
              << "\n";
  } else if (r.ok()) {
    std::printf("audit log intact: %lld entries (%s), head %lld %s\n", static_cast<long long>(r.entries),
                source.c_str(), static_cast<long long>(r.head.seq), r.head.hash.substr(0, 16).c_str());
  } else {
    std::printf("audit log TAMPERED: %lld problem(s) in %lld entries (%s)\n",
                static_cast<long long>(r.problems_total), static_cast<long long>(r.entries), source.c_str());
    for (const auto& p : r.problems) std::printf("  seq %-8lld %-12s %s\n", static_cast<long long>(p.seq),
                                                 p.kind.c_str(), p.detail.c_str());
    if (r.problems_total > static_cast<std::int64_t>(r.problems.size())) {
      std::printf("  ... and %lld more\n", static_cast<long long>(r.problems_total - r.problems.size()));
    }
  }
  return r.ok() ? kExitOk : kExitFailure;
}

// An entry of GET /api/v1/audit (or of an export) as a row; false when a
// field is missing or of the wrong type.
bool RowOf(const json& j, audit::AuditRow* r) {
  if (!j.is_object()) return false;
  try {
    r->seq = j.at("seq").get<std::int64_t>();
    r->time_ms = j.at("time_ms").get<std::int64_t>();
    for (auto [key, field] : {std::pair{"node_id", &r->node_id},
                              {"kind", &r->kind},
                              {"principal", &r->principal},
                              {"action", &r->action},
                              {"target", &r->target},
                              {"outcome", &r->outcome},
                              {"client", &r->client},
                              {"request_id", &r->request_id},
                              {"prev_hash", &r->prev_hash},
                              {"hash", &r->hash},
                              {"signature", &r->signature}}) {
      *field = j.at(key).get<std::string>();
    }
    // The API shows details as JSON; the hash covers the text as stored,
    // which is nlohmann's compact dump of it (what the node wrote).
    const json& d = j.at("details");
    r->details = d.is_string() ? d.get<std::string>() : DumpJson(d);
  } catch (const json::exception&) {
    return false;
  }
  return true;
}

}  // namespace

int AuditVerifyStore(const config::Config& config, bool as_json) {
  const fs::path key_file = fs::path(config.node.data_dir) / "p2p" / "identity.key";
  if (!fs::exists(key_file)) {
    PrintError("no node identity at " + key_file.string() + ": the audit log's signatures cannot be checked");
    return kExitFailure;
  }
  auto identity = p2p::NodeIdentity::LoadOrCreate((fs::path(config.node.data_dir) / "p2p").string());
  if (!identity.ok()) {
    PrintError(identity.status().message());
    return kExitFailure;
  }
  auto storage = storage::OpenStorage(config, identity->node_id());
  if (!storage.ok()) {
    PrintError(storage.status().message());
    return kExitUnreachable;
  }
  auto head = storage->audit->ReadAuditHead();
  if (!head.ok()) {
    PrintError("reading the audit head: " + head.status().message());
    storage->store->Close();
    return kExitFailure;
  }
  auto report = audit::VerifyChain(audit::StoredEntries(*storage->audit), identity->public_key(), *head);
  storage->store->Close();
  if (!report.ok()) {
    PrintError("reading the audit log: " + report.status().message());
    return kExitFailure;
  }
  return PrintReport(*report, "store of node " + identity->node_id(), as_json);
}

int AuditVerifyFile(const std::string& path, const std::string& public_key_hex, bool as_json) {
  std::ifstream in(path);
  if (!in) {
    PrintError("cannot read " + path);
    return kExitFailure;
  }
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const json doc = ParseJson(text);
  if (!doc.is_object() || !doc.contains("entries") || !doc["entries"].is_array() || !doc.contains("head") ||
      !doc["head"].is_object()) {
    PrintError(path + ": not an audit export (an object with entries, head and public_key)");
    return kExitFailure;
  }
  const std::string key_hex = !public_key_hex.empty() ? public_key_hex : doc.value("public_key", "");
  p2p::PublicKey key{};
  if (!BytesOfHex(key_hex, key.data(), key.size())) {
    PrintError("the public key must be 64 lower-case hex digits");
    return kExitUsage;
  }
  std::vector<audit::AuditRow> rows;
  for (const json& e : doc["entries"]) {
    audit::AuditRow r;
    if (!RowOf(e, &r)) {
      PrintError(path + ": entry " + std::to_string(rows.size()) + " is malformed");
      return kExitFailure;
    }
    rows.push_back(std::move(r));
  }
  audit::AuditHead head;
  head.seq = doc["head"].value("seq", std::int64_t{0});
  head.hash = doc["head"].value("hash", "");
  bool served = false;
  auto report = audit::VerifyChain(
      [&]() -> Result<std::vector<audit::AuditRow>> {
        if (served) return std::vector<audit::AuditRow>{};
        served = true;
        return rows;
      },
      key, head);
  if (!report.ok()) {
    PrintError(report.status().message());
    return kExitFailure;
  }
  if (public_key_hex.empty() && !as_json) {
    std::printf("(signatures checked against the key the export names; pass --public-key to check it is the "
                "node's)\n");
  }
  return PrintReport(*report, path, as_json);
}

int AuditExport(const ClientArgs& client, const std::string& path) {
  const ClientOptions options = ClientFrom(client);
  json entries = json::array();
  json last;
  std::int64_t after = 0;
  int code = kExitOk;
  for (;;) {
    auto page = CallJson(options, "GET", "/api/v1/audit?limit=1000&after=" + std::to_string(after), "", &code);
    if (!page) return code;
    const json& list = (*page)["entries"];
    for (const json& e : list) {
      after = e.value("seq", after);
      entries.push_back(e);
    }
    last = std::move(*page);
    // Done when a page came back empty and the head it names is the last
    // entry fetched (entries written meanwhile are fetched too).
    if (list.empty() && last["head"].value("seq", std::int64_t{0}) <= after) break;
  }
  json doc = {{"node_id", last.value("node_id", "")},
              {"public_key", last.value("public_key", "")},
              {"head", last["head"]},
              {"entries", std::move(entries)}};
  if (path == "-") {
    std::cout << doc.dump(1) << "\n";
  } else {
    std::ofstream out(path);
    out << doc.dump(1) << "\n";
    if (!out) {
      PrintError("cannot write " + path);
      return kExitFailure;
    }
    std::fprintf(stderr, "wrote %zu entries to %s\n", doc["entries"].size(), path.c_str());
  }
  return kExitOk;
}

}  // namespace bzzz::cli
