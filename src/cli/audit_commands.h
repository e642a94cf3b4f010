// `bzzz audit verify` and `bzzz audit export`: checking the node's audit
// hash chain (audit/chain.h), from its own store or from an export.
#pragma once

#include <string>

#include "cli/common.h"
#include "config/config.h"

namespace bzzz::cli {

// Verifies the chain in the store `config` names, with the public key of
// the node identity in its data directory. Exit 0 when intact, 1 when a
// problem was found (each printed), 3 when the store cannot be opened.
int AuditVerifyStore(const config::Config& config, bool as_json);
// Verifies an export written by AuditExport. The signatures are checked
// against `public_key_hex` when given, else against the key the export
// names (which proves integrity only if that key is known to be the node's).
int AuditVerifyFile(const std::string& path, const std::string& public_key_hex, bool as_json);
// Writes every entry of a running node (GET /api/v1/audit, oldest first)
// with its head and public key as one JSON document to `path` ("-": stdout).
int AuditExport(const ClientArgs& client, const std::string& path);

}  // namespace bzzz::cli
