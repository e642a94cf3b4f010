// Fuzz target: what a node parses of the role-key machinery from the DHT or
// its store: sealed envelopes (UCXL content), key rings (JSON, signed or
// not). Properties: no crash; an envelope that parses encodes back to the
// same bytes; a ring that parses serializes to a ring that parses to the
// same ring; nothing unsigned by the cluster key verifies.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "keys/envelope.h"
#include "keys/keyring.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (auto e = bzzz::keys::ParseEnvelope(input); e.ok()) {
    if (bzzz::keys::EncodeEnvelope(*e) != input) std::abort();
  }
  if (auto r = bzzz::keys::RingFromJson(input); r.ok()) {
    auto again = bzzz::keys::RingFromJson(bzzz::keys::RingToJson(*r));
    if (!again.ok() || !(*again == *r)) std::abort();
  }
  static const std::array<std::uint8_t, 32> kClusterKey{1, 2, 3};
  if (bzzz::keys::VerifyRing(input, kClusterKey).ok()) std::abort();
  return 0;
}
