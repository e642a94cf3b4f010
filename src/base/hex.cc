#include "base/hex.h"

#include <algorithm>

namespace bzzz {

std::string HexOf(const void* data, std::size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  const auto* bytes = static_cast<const std::uint8_t*>(data);
  std::string out(size * 2, '0');
  for (std::size_t i = 0; i < size; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 15];
  }
  return out;
}

bool IsLowerHex(std::string_view text, std::size_t digits) {
  if (digits != std::string_view::npos && text.size() != digits) return false;
  return std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool BytesOfHex(std::string_view text, void* out, std::size_t size) {
  if (text.size() != 2 * size || !IsLowerHex(text)) return false;
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  auto* bytes = static_cast<std::uint8_t*>(out);
  for (std::size_t i = 0; i < size; ++i) {
    bytes[i] = static_cast<std::uint8_t>(nibble(text[2 * i]) << 4 | nibble(text[2 * i + 1]));
  }
  return true;
}

std::string BytesOfHex(std::string_view text) {
  std::string out(text.size() / 2, '\0');
  if (!BytesOfHex(text, out.data(), out.size())) return {};
  return out;
}

}  // namespace bzzz
