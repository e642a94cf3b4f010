// Fuzz target: the P2P frame decoder (and the mesh's unverified routing
// peek, which must agree with it), the presence parser and the peer
// store's line format (every input is also read as a peer store file: what
// reads must write back to text that reads again to the same contacts).
// Byte 0 picks the mode: even, decode the rest as received from the network
// (almost always refused at the signature); odd, treat the rest as a frame
// body, stamp it with a fixed key and sign it, so the parser behind the
// signature check sees arbitrary but authentic content. Every input is also
// decoded as from an authenticated link (no signature check: what a member
// sends over its link reaches the parser as it is). Nothing may crash;
// whatever decodes must re-encode to the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "p2p/identity.h"
#include "p2p/p2p.h"
#include "p2p/peer_store.h"
#include "p2p/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace bzzz::p2p;
  static const NodeIdentity key = NodeIdentity::Generate();
  if (size == 0) return 0;
  {
    int bad = 0, bad_again = 0;
    const auto nodes = internal::ParsePeerStore({reinterpret_cast<const char*>(data), size}, &bad);
    const std::string text = internal::FormatPeerStore(nodes);
    const auto again = internal::ParsePeerStore(text, &bad_again);
    if (bad_again != 0 || again.size() != nodes.size() || internal::FormatPeerStore(again) != text) __builtin_trap();
  }
  Bytes frame(data + 1, data + size);
  if (data[0] & 1) {
    if (frame.size() < 36) return 0;
    std::memcpy(frame.data() + 4, key.public_key().data(), 32);
    SignFrameBody(frame, key);
  }
  const Decoded d = DecodeFrame(frame.data(), frame.size());
  (void)UnsealFrame(frame.data(), frame.size(), key);
  // The mesh routes a frame by its unverified header before verifying it:
  // whatever decodes must route to the same topic, sender, seq and count.
  FrameRoute route;
  const bool routed = PeekFrameRoute(frame.data(), frame.size(), &route);
  if (d.ok() && (!routed || route.topic != d.frame.topic || route.sender != d.frame.sender ||
                 route.seq != d.frame.seq || route.messages != d.frame.messages.size())) {
    __builtin_trap();
  }
  const Decoded linked = DecodeFrame(frame.data(), frame.size(), Origin::kAuthenticatedLink);
  if (d.ok() && !linked.ok()) __builtin_trap();
  if (linked.ok() && (!routed || route.topic != linked.frame.topic || route.sender != linked.frame.sender ||
                      route.seq != linked.frame.seq || route.messages != linked.frame.messages.size())) {
    __builtin_trap();
  }
  if (!d.ok()) return 0;
  for (const auto& m : d.frame.messages) {
    std::string name;
    (void)PresenceFromJson(m.data, &name);
  }
  // A decoded frame re-encodes (with the same key) to the same bytes.
  if (d.frame.sender == key.public_key()) {
    auto again = EncodeFrame(d.frame, key);
    if (!again.ok() || *again != frame) __builtin_trap();
  }
  return 0;
}
