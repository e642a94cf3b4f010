#include "security/authenticator.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "base/hex.h"

namespace bzzz::security {

namespace {

constexpr std::size_t kSaltBytes = config::kTokenSaltBytes;
constexpr std::size_t kDigestBytes = 32;

std::string Hmac(std::string_view salt, std::string_view token) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), salt.data(), static_cast<int>(salt.size()), reinterpret_cast<const unsigned char*>(token.data()),
       token.size(), digest, &length);
  return std::string(reinterpret_cast<const char*>(digest), length);
}

// salt and digest of a well-formed token hash, raw.
std::pair<std::string, std::string> SplitTokenHash(std::string_view token_hash) {
  const std::string_view rest = token_hash.substr(config::kTokenHashScheme.size());
  return {BytesOfHex(rest.substr(0, 2 * kSaltBytes)), BytesOfHex(rest.substr(2 * kSaltBytes + 1))};
}

using DigestContext = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

}  // namespace

// The hash states after the padded key of RFC 2104 (HMAC), so that each
// token presented costs two short SHA-256 runs instead of setting the key up
// again through OpenSSL's one-shot HMAC (about 3% of a node's CPU per
// authenticated request under load, bench/tasks).
struct StaticTokenAuthenticator::PreparedMac {
  DigestContext inner{EVP_MD_CTX_new(), &EVP_MD_CTX_free};
  DigestContext outer{EVP_MD_CTX_new(), &EVP_MD_CTX_free};
  bool ok = false;

  explicit PreparedMac(std::string_view key) {
    unsigned char block[64] = {};  // SHA-256's block
    unsigned int n = 0;
    if (key.size() > sizeof block) {
      EVP_Digest(key.data(), key.size(), block, &n, EVP_sha256(), nullptr);
    } else {
      std::memcpy(block, key.data(), key.size());
    }
    unsigned char ipad[64], opad[64];
    for (std::size_t i = 0; i < sizeof block; ++i) {
      ipad[i] = static_cast<unsigned char>(block[i] ^ 0x36);
      opad[i] = static_cast<unsigned char>(block[i] ^ 0x5c);
    }
    ok = inner && outer && EVP_DigestInit_ex(inner.get(), EVP_sha256(), nullptr) == 1 &&
         EVP_DigestUpdate(inner.get(), ipad, sizeof ipad) == 1 &&
         EVP_DigestInit_ex(outer.get(), EVP_sha256(), nullptr) == 1 &&
         EVP_DigestUpdate(outer.get(), opad, sizeof opad) == 1;
    OPENSSL_cleanse(block, sizeof block);
    OPENSSL_cleanse(ipad, sizeof ipad);
    OPENSSL_cleanse(opad, sizeof opad);
  }

  // HMAC-SHA256(key, message) into `out`; false when OpenSSL fails (then
  // nothing matches).
  bool Mac(std::string_view message, unsigned char (&out)[kDigestBytes]) const {
    thread_local DigestContext ctx{EVP_MD_CTX_new(), &EVP_MD_CTX_free};
    unsigned int n = 0;
    return ok && ctx && EVP_MD_CTX_copy_ex(ctx.get(), inner.get()) == 1 &&
           EVP_DigestUpdate(ctx.get(), message.data(), message.size()) == 1 &&
           EVP_DigestFinal_ex(ctx.get(), out, &n) == 1 && EVP_MD_CTX_copy_ex(ctx.get(), outer.get()) == 1 &&
           EVP_DigestUpdate(ctx.get(), out, kDigestBytes) == 1 && EVP_DigestFinal_ex(ctx.get(), out, &n) == 1 &&
           n == kDigestBytes;
  }
};

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  return HexOf(digest, length);
}

std::string HmacSha256Hex(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), mac, &length);
  return HexOf(mac, length);
}

std::string HashToken(std::string_view token) {
  unsigned char salt[kSaltBytes];
  if (RAND_bytes(salt, sizeof salt) != 1) std::abort();  // no randomness: no salt worth the name
  const std::string raw(reinterpret_cast<const char*>(salt), sizeof salt);
  const std::string digest = Hmac(raw, token);
  return std::string(config::kTokenHashScheme) + HexOf(salt, sizeof salt) + ":" + HexOf(digest);
}

bool TokenMatches(std::string_view token_hash, std::string_view token) {
  if (!config::TokenHashProblem(token_hash).empty()) return false;
  const auto [salt, digest] = SplitTokenHash(token_hash);
  const std::string presented = Hmac(salt, token);
  return CRYPTO_memcmp(presented.data(), digest.data(), kDigestBytes) == 0;
}

StaticTokenAuthenticator::StaticTokenAuthenticator(const std::vector<config::ApiToken>& tokens,
                                                   std::string_view bootstrap_admin_token) {
  if (!bootstrap_admin_token.empty()) {
    Identity admin;
    admin.principal = "bootstrap-admin";
    admin.roles = {"system_admin"};
    admin.method = "bootstrap-token";
    admin.authenticated = true;
    auto [salt, digest] = SplitTokenHash(HashToken(bootstrap_admin_token));
    salted_.push_back({std::make_shared<const PreparedMac>(salt), std::move(digest), std::move(admin)});
  }
  for (const auto& token : tokens) {
    Identity identity;
    identity.principal = token.name;
    identity.roles = token.roles;
    identity.method = "api-token";
    identity.authenticated = true;
    if (config::TokenHashProblem(token.token_hash).empty()) {
      auto [salt, digest] = SplitTokenHash(token.token_hash);
      salted_.push_back({std::make_shared<const PreparedMac>(salt), std::move(digest), std::move(identity)});
    } else if (!token.token_sha256.empty()) {
      by_sha256_.emplace(token.token_sha256, std::move(identity));
    }
  }
}

AuthResult StaticTokenAuthenticator::Authenticate(const Credentials& credentials) const {
  AuthResult result;
  // JWTs (three dot-separated parts) are left to the JWT authenticator.
  if (std::count(credentials.token.begin(), credentials.token.end(), '.') == 2) return result;
  // Every salted entry is tried (no early exit on a match), so the time
  // taken does not tell which entry matched; the first match wins (the
  // bootstrap token comes first).
  const Salted* match = nullptr;
  for (const Salted& entry : salted_) {
    unsigned char presented[kDigestBytes];
    const bool computed = entry.mac->Mac(credentials.token, presented);
    if (computed && CRYPTO_memcmp(presented, entry.digest.data(), kDigestBytes) == 0 && match == nullptr) {
      match = &entry;
    }
  }
  if (match == nullptr && !by_sha256_.empty()) {
    // Unsalted entries: hashing first means the lookup never compares secrets directly.
    if (const auto it = by_sha256_.find(Sha256Hex(credentials.token)); it != by_sha256_.end()) {
      result.outcome = AuthResult::Outcome::kAuthenticated;
      result.identity = it->second;
      return result;
    }
  }
  if (match == nullptr) {
    result.outcome = AuthResult::Outcome::kInvalid;
    result.reason = "unknown or revoked token";
    return result;
  }
  result.outcome = AuthResult::Outcome::kAuthenticated;
  result.identity = match->identity;
  return result;
}

std::string WeakTokenReason(std::string_view token) {
  if (token.size() < 16) return "it has " + std::to_string(token.size()) + " characters, at least 16 are needed";
  bool seen[256] = {};
  int distinct = 0;
  for (unsigned char c : token) {
    if (!seen[c]) {
      seen[c] = true;
      ++distinct;
    }
  }
  if (distinct < 8) return "it uses only " + std::to_string(distinct) + " distinct characters, at least 8 are needed";
  return "";
}

}  // namespace bzzz::security
