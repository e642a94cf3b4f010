#include "executors/secrets.h"

#include <sodium.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "base/base64.h"
#include "base/json.h"

namespace bzzz::executors {

Result<std::string> SecretStore::Resolve(const std::string& value) const {
  if (value.rfind(kSecretScheme, 0) != 0) return value;
  const std::string name = value.substr(kSecretScheme.size());
  if (name.empty() || name.size() > 64 ||
      !std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isalnum(c) || c == '_'; })) {
    return InvalidArgument("secret reference \"" + value + "\": the name must be 1..64 of [A-Za-z0-9_]");
  }
  if (const char* env = std::getenv(("BZZZ_SECRET_" + name).c_str()); env != nullptr) return std::string(env);
  if (!file_.empty()) {
    struct stat st{};
    if (stat(file_.c_str(), &st) == 0) {
      if (st.st_mode & 077) {
        return FailedPrecondition("agents.secrets_file " + file_ + " may be read by group or others (chmod 600)");
      }
      std::ifstream in(file_);
      std::stringstream text;
      text << in.rdbuf();
      const auto j = ParseJson(text.str());
      if (!j.is_object()) return FailedPrecondition("agents.secrets_file " + file_ + " is not a JSON object");
      if (auto it = j.find(name); it != j.end() && it->is_string()) return it->get<std::string>();
    }
  }
  return NotFound("secret " + name + " is not defined on this node (BZZZ_SECRET_" + name +
                  " or agents.secrets_file)");
}

namespace {
constexpr std::size_t kNonce = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr std::size_t kTag = crypto_aead_xchacha20poly1305_ietf_ABYTES;
}  // namespace

bool SecretSealer::IsSealed(std::string_view value) { return value.substr(0, kSealedPrefix.size()) == kSealedPrefix; }

std::string SecretSealer::Seal(std::string_view plain, std::string_view context) const {
  if (sodium_init() < 0) std::abort();  // no randomness: nothing can be sealed safely
  std::string box(kNonce + plain.size() + kTag, '\0');
  auto* out = reinterpret_cast<unsigned char*>(box.data());
  randombytes_buf(out, kNonce);
  unsigned long long length = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out + kNonce, &length, reinterpret_cast<const unsigned char*>(plain.data()),
                                             plain.size(), reinterpret_cast<const unsigned char*>(context.data()),
                                             context.size(), nullptr, out, key_.data());
  return std::string(kSealedPrefix) + Base64Url(box);
}

Result<std::string> SecretSealer::Open(std::string_view sealed, std::string_view context) const {
  if (!IsSealed(sealed)) return InvalidArgument("not a sealed value");
  const auto box = FromBase64Url(sealed.substr(kSealedPrefix.size()));
  if (!box.ok() || box->size() < kNonce + kTag) {
    return InvalidArgument("a sealed value is not valid base64url of nonce, ciphertext and tag");
  }
  const std::size_t size = box->size();
  const auto* in = reinterpret_cast<const unsigned char*>(box->data());
  std::string plain(size - kNonce - kTag, '\0');
  unsigned long long length = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(reinterpret_cast<unsigned char*>(plain.data()), &length, nullptr,
                                                 in + kNonce, size - kNonce,
                                                 reinterpret_cast<const unsigned char*>(context.data()),
                                                 context.size(), in, key_.data()) != 0) {
    return FailedPrecondition("a sealed secret does not open with this node's key (sealed by another node, or changed)");
  }
  plain.resize(length);
  return plain;
}

}  // namespace bzzz::executors
