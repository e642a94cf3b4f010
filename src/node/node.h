// Node: one running bzzz process, assembled from its subsystems.
//
// Create() checks the configuration and prepares the data directory; Start()
// takes the data-directory lock, opens and migrates the store, registers the
// health checks and shutdown steps, and starts the HTTP server; Run() blocks
// until the graceful shutdown (SIGTERM, SIGINT or POST /admin/shutdown) has
// finished. The shutdown order is SPEC §3.2's: stop accepting connections,
// drain in-flight requests, (stop agents, leave the election: later
// subsystems register these steps), stop services, flush stores, flush logs.
//
// Data directory layout (docs/operations.md):
//   <data_dir>/LOCK                 advisory lock: one node per data directory
//   <data_dir>/p2p/identity.key     Ed25519 key; the node id derives from it
//   <data_dir>/cluster/             membership: the credential, revocations,
//                                   and (authorities) cluster.key
//   <data_dir>/p2p/peers            DHT contacts, for a fast rejoin (peer store)
//   <data_dir>/dht/held/            records this node holds and re-puts
//   <data_dir>/dht/cache/           records fetched from the DHT (deletable)
//   <data_dir>/bzzz.db              SQLite store (+ -wal, -shm)
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"
#include "config/config.h"
#include "ops/health.h"
#include "storage/store.h"

namespace bzzz::node {

// Build facts, also reported by `bzzz version` and /info.
std::string Version();
std::string GitCommit();

struct NodeOptions {
  // `bzzz dht-bootstrap`: a DHT node that only helps others join: no
  // record store, no agents, and an HTTP API only when `serve_http`.
  bool bootstrap_only = false;
  bool serve_http = true;
};

class Node {
 public:
  static Result<std::unique_ptr<Node>> Create(config::Config config, NodeOptions options = {});
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Starts everything; on failure, whatever was started is stopped again.
  Status Start();

  // Blocks until shutdown has finished. Returns the process exit code: 0 for
  // a graceful shutdown, 1 when it overran operations.shutdown_timeout.
  int Run();

  // Starts the graceful shutdown. Conflict when one is already under way.
  Status RequestShutdown(std::string reason);

  std::uint16_t HttpPort() const;
  const std::string& NodeId() const;

 private:
  Node(config::Config config, NodeOptions options);
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Blocks SIGINT and SIGTERM in the calling thread, so that threads created
// afterwards (loggers, I/O, checks) inherit the mask and the node's signal
// watcher is the only taker. Call before creating any thread.
void BlockShutdownSignals();

// The storage-health verdict on a store's health report (used by the node's
// check and by `bzzz db health-check`): unhealthy when unreachable or
// failing its integrity check, degraded with pending migrations.
ops::CheckOutcome AssessStoreHealth(const storage::StoreHealth& health);

}  // namespace bzzz::node
