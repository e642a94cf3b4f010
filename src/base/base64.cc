#include "base/base64.h"

#include <sodium.h>

#include <cstring>

namespace bzzz {
namespace {

std::string Encode(std::string_view bytes, int variant) {
  if (sodium_init() < 0) return {};
  std::string out(sodium_base64_encoded_len(bytes.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                    variant);
  out.resize(std::strlen(out.c_str()));
  return out;
}

Result<std::string> Decode(std::string_view text, int variant, const char* what) {
  if (sodium_init() < 0) return Internal("libsodium could not be initialised");
  std::string out(text.size(), '\0');
  std::size_t n = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(), text.size(), nullptr,
                        &n, &end, variant) != 0 ||
      end != text.data() + text.size()) {
    return InvalidArgument(what);
  }
  out.resize(n);
  return out;
}

}  // namespace

std::string Base64Url(std::string_view bytes) { return Encode(bytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING); }

Result<std::string> FromBase64Url(std::string_view text) {
  return Decode(text, sodium_base64_VARIANT_URLSAFE_NO_PADDING, "not base64url");
}

std::string Base64(std::string_view bytes) { return Encode(bytes, sodium_base64_VARIANT_ORIGINAL); }

Result<std::string> FromBase64(std::string_view text) {
  return Decode(text, sodium_base64_VARIANT_ORIGINAL, "not base64");
}

}  // namespace bzzz
