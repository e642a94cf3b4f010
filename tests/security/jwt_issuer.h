// The signing side of an identity provider, for tests: RSA and EC P-256
// keys made with OpenSSL, published as a JWKS, and tokens signed with them
// (or forged: any header, any algorithm, HS256 keyed with the public key).
// Test-only; the node only ever verifies.
#pragma once

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>

#include <memory>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "base/base64.h"

namespace bzzz::testing {

class SigningKey {
 public:
  enum class Type { kRsa, kEc };

  SigningKey(Type type, std::string kid, int rsa_bits = 2048) : type_(type), kid_(std::move(kid)) {
    pkey_ = type == Type::kRsa ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(rsa_bits))
                               : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    if (pkey_ == nullptr) throw std::runtime_error("key generation failed");
  }
  ~SigningKey() { EVP_PKEY_free(pkey_); }
  SigningKey(const SigningKey&) = delete;
  SigningKey& operator=(const SigningKey&) = delete;

  const std::string& kid() const { return kid_; }
  std::string alg() const { return type_ == Type::kRsa ? "RS256" : "ES256"; }

  // The public key as a JWK.
  nlohmann::json Jwk() const {
    if (type_ == Type::kRsa) {
      return {{"kty", "RSA"}, {"kid", kid_}, {"use", "sig"}, {"alg", "RS256"}, {"n", Bn(OSSL_PKEY_PARAM_RSA_N)},
              {"e", Bn(OSSL_PKEY_PARAM_RSA_E)}};
    }
    unsigned char point[65];
    std::size_t len = 0;
    EVP_PKEY_get_octet_string_param(pkey_, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point, &len);
    const std::string p(reinterpret_cast<const char*>(point), len);
    return {{"kty", "EC"}, {"kid", kid_}, {"use", "sig"}, {"crv", "P-256"}, {"alg", "ES256"},
            {"x", Base64Url(p.substr(1, 32))}, {"y", Base64Url(p.substr(33, 32))}};
  }

  // A token of `claims` with this key's algorithm and kid.
  std::string Sign(const nlohmann::json& claims) const {
    return SignWithHeader({{"alg", alg()}, {"typ", "JWT"}, {"kid", kid_}}, claims);
  }
  // A token with any header, signed by this key (whatever the header says).
  std::string SignWithHeader(const nlohmann::json& header, const nlohmann::json& claims) const {
    const std::string input = Base64Url(header.dump()) + "." + Base64Url(claims.dump());
    return input + "." + Base64Url(RawSignature(input));
  }

  // The public key's bytes as an attacker would use them as an HMAC secret.
  std::string PublicBytes() const { return Jwk().dump(); }

 private:
  std::string Bn(const char* name) const {
    BIGNUM* bn = nullptr;
    EVP_PKEY_get_bn_param(pkey_, name, &bn);
    std::string out(static_cast<std::size_t>(BN_num_bytes(bn)), '\0');
    BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
    BN_free(bn);
    return Base64Url(out);
  }

  std::string RawSignature(const std::string& input) const {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    std::size_t len = 0;
    EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, pkey_);
    EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()), input.size());
    std::string sig(len, '\0');
    EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                   reinterpret_cast<const unsigned char*>(input.data()), input.size());
    EVP_MD_CTX_free(ctx);
    sig.resize(len);
    if (type_ == Type::kRsa) return sig;
    // DER → R || S, 32 bytes each.
    const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    std::string raw(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
    ECDSA_SIG_free(es);
    return raw;
  }

  Type type_;
  std::string kid_;
  EVP_PKEY* pkey_ = nullptr;
};

// HS256 over header.claims keyed with `secret`: the algorithm-confusion
// forgery (a verifier that lets the header pick HMAC and uses the RSA/EC
// public key as the secret would accept it).
inline std::string ForgeHs256(const nlohmann::json& header, const nlohmann::json& claims, const std::string& secret) {
  const std::string input = Base64Url(header.dump()) + "." + Base64Url(claims.dump());
  unsigned char mac[32];
  std::size_t len = 0;
  EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, secret.data(), secret.size(),
            reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, sizeof mac, &len);
  return input + "." + Base64Url(std::string(reinterpret_cast<const char*>(mac), len));
}

// A JWKS document of the given keys.
template <typename... Keys>
std::string Jwks(const Keys&... keys) {
  nlohmann::json list = nlohmann::json::array();
  (list.push_back(keys.Jwk()), ...);
  return nlohmann::json{{"keys", list}}.dump();
}

}  // namespace bzzz::testing
