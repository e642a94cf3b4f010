// Lower-case hexadecimal: the one encoder and checker of the tree (node
// ids, cluster ids, digests, salts, token ids).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace bzzz {

// "00ff..." for `size` bytes at `data`.
std::string HexOf(const void* data, std::size_t size);
inline std::string HexOf(std::string_view bytes) { return HexOf(bytes.data(), bytes.size()); }
// Whether `text` is lower-case hex digits only (and, when `digits` is not
// npos, exactly that many).
bool IsLowerHex(std::string_view text, std::size_t digits = std::string_view::npos);
// The bytes of lower-case hex `text` into `out` (exactly `size` bytes):
// false, and `out` untouched, unless `text` is 2 * size such digits.
bool BytesOfHex(std::string_view text, void* out, std::size_t size);
// The bytes of lower-case hex `text`; "" when it is not such text.
std::string BytesOfHex(std::string_view text);

}  // namespace bzzz
