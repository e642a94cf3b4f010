#include "base/random.h"

#include <sodium.h>

#include "base/hex.h"

namespace bzzz {

void RandomBytes(void* out, std::size_t size) { randombytes_buf(out, size); }

std::string RandomHex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  randombytes_buf(raw.data(), raw.size());
  return HexOf(raw);
}

std::uint64_t RandomNonZeroU64() {
  std::uint64_t v = 0;
  while (v == 0) randombytes_buf(&v, sizeof v);
  return v;
}

std::string RandomUuid() {
  unsigned char b[16];
  randombytes_buf(b, sizeof b);
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  const std::string hex = HexOf(b, sizeof b);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" + hex.substr(16, 4) + "-" +
         hex.substr(20);
}

}  // namespace bzzz
