// The peer store (private to the p2p library): the DHT contacts a node had
// when it stopped, in <data_dir>/p2p/peers, so that a restart rejoins at
// once without a bootstrap node. One contact per line, "<40 hex node id>
// <ip> <port>", written atomically with 0600 (base/file.h). A line that
// does not read is skipped and counted, never fatal: the file is a cache
// (`bzzz p2p peers clear` deletes it).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <opendht/infohash.h>

#include "base/status.h"

namespace bzzz::p2p::internal {

// The file's text for `nodes` (IPv4 and IPv6 contacts; others are left out).
std::string FormatPeerStore(const std::vector<dht::NodeExport>& nodes);
// The contacts in `text`; `bad` counts the lines that do not read.
std::vector<dht::NodeExport> ParsePeerStore(std::string_view text, int* bad);

// The contacts saved in `path` (none when it is missing or empty), with a
// warning naming the file when lines were skipped.
std::vector<dht::NodeExport> LoadPeerStore(const std::string& path);
Status SavePeerStore(const std::string& path, const std::vector<dht::NodeExport>& nodes);

}  // namespace bzzz::p2p::internal
