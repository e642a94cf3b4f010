// Random identifiers and nonces, from the operating system's CSPRNG through
// libsodium (randombytes): the one source of ids of the tree (request ids,
// tokens, token ids, serials, probe nonces, DHT value ids). Seeded
// simulations use their own std::mt19937_64, never this.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace bzzz {

void RandomBytes(void* out, std::size_t size);
// 2 * `bytes` lower-case hex digits.
std::string RandomHex(std::size_t bytes);
// Never 0 (0 means "none" in the places that use these).
std::uint64_t RandomNonZeroU64();
// A version 4 UUID, lower case: "8c0f3a1e-6b1d-4f7a-9c2e-3d4b5a6c7d8e".
std::string RandomUuid();

}  // namespace bzzz
