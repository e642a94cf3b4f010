#include "security/jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <cmath>
#include <limits>

#include "base/base64.h"
#include "base/json.h"

namespace bzzz::security {

using nlohmann::json;

// --- reasons ---

namespace {

class JwtErrorCategory final : public ErrorCategory {
 public:
  const char* name() const noexcept override { return "jwt"; }
  std::string message(int value) const override { return std::string(JwtReasonName(static_cast<JwtErrc>(value))); }
  StatusCode Generic(int) const override { return StatusCode::kUnauthenticated; }
  int HttpStatus(int) const override { return 401; }
};

}  // namespace

const ErrorCategory& JwtCategory() {
  static const JwtErrorCategory kCategory;
  return kCategory;
}

std::string_view JwtReasonName(JwtErrc e) {
  switch (e) {
    case JwtErrc::kMalformed: return "malformed";
    case JwtErrc::kAlgorithm: return "algorithm";
    case JwtErrc::kUnknownKey: return "unknown_key";
    case JwtErrc::kBadSignature: return "bad_signature";
    case JwtErrc::kExpired: return "expired";
    case JwtErrc::kNotYetValid: return "not_yet_valid";
    case JwtErrc::kWrongIssuer: return "wrong_issuer";
    case JwtErrc::kWrongAudience: return "wrong_audience";
    case JwtErrc::kMissingClaim: return "missing_claim";
  }
  return "unknown";
}

// --- keys ---

enum class Alg { kRS256, kES256 };

struct JwkSet::Key {
  std::string kid;
  Alg alg = Alg::kRS256;
  EVP_PKEY* pkey = nullptr;
  ~Key() { EVP_PKEY_free(pkey); }
};

namespace {

std::string_view AlgName(Alg a) { return a == Alg::kRS256 ? "RS256" : "ES256"; }

struct ParamBuilder {
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM* params = nullptr;
  std::vector<BIGNUM*> bns;
  ~ParamBuilder() {
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    for (BIGNUM* b : bns) BN_free(b);
  }
};

EVP_PKEY* FromParams(const char* type, OSSL_PARAM* params) {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
  EVP_PKEY* pkey = nullptr;
  if (ctx == nullptr || EVP_PKEY_fromdata_init(ctx) <= 0 ||
      EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
    pkey = nullptr;
  }
  EVP_PKEY_CTX_free(ctx);
  return pkey;
}

// An RSA public key of at least 2048 bits from the JWK's n and e.
EVP_PKEY* RsaKey(const json& jwk, std::string* why) {
  if (!jwk.contains("n") || !jwk["n"].is_string() || !jwk.contains("e") || !jwk["e"].is_string()) {
    *why = "RSA key without n and e";
    return nullptr;
  }
  auto n = FromBase64Url(jwk["n"].get<std::string>());
  auto e = FromBase64Url(jwk["e"].get<std::string>());
  if (!n.ok() || !e.ok() || n->empty() || e->empty() || e->size() > 8) {
    *why = "RSA n or e is not base64url";
    return nullptr;
  }
  ParamBuilder b;
  BIGNUM* bn_n = BN_bin2bn(reinterpret_cast<const unsigned char*>(n->data()), static_cast<int>(n->size()), nullptr);
  BIGNUM* bn_e = BN_bin2bn(reinterpret_cast<const unsigned char*>(e->data()), static_cast<int>(e->size()), nullptr);
  b.bns = {bn_n, bn_e};
  if (b.bld == nullptr || bn_n == nullptr || bn_e == nullptr ||
      !OSSL_PARAM_BLD_push_BN(b.bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
      !OSSL_PARAM_BLD_push_BN(b.bld, OSSL_PKEY_PARAM_RSA_E, bn_e) ||
      (b.params = OSSL_PARAM_BLD_to_param(b.bld)) == nullptr) {
    *why = "RSA key could not be built";
    return nullptr;
  }
  EVP_PKEY* pkey = FromParams("RSA", b.params);
  if (pkey == nullptr) {
    *why = "RSA key could not be built";
    return nullptr;
  }
  if (EVP_PKEY_get_bits(pkey) < 2048) {
    *why = "RSA modulus of " + std::to_string(EVP_PKEY_get_bits(pkey)) + " bits (at least 2048 are required)";
    EVP_PKEY_free(pkey);
    return nullptr;
  }
  return pkey;
}

// An EC P-256 public key from the JWK's x and y, checked to be on the curve.
EVP_PKEY* EcKey(const json& jwk, std::string* why) {
  if (!jwk.contains("crv") || jwk["crv"] != "P-256") {
    *why = "EC key on a curve other than P-256";
    return nullptr;
  }
  if (!jwk.contains("x") || !jwk["x"].is_string() || !jwk.contains("y") || !jwk["y"].is_string()) {
    *why = "EC key without x and y";
    return nullptr;
  }
  auto x = FromBase64Url(jwk["x"].get<std::string>());
  auto y = FromBase64Url(jwk["y"].get<std::string>());
  if (!x.ok() || !y.ok() || x->size() != 32 || y->size() != 32) {
    *why = "EC x or y is not 32 bytes of base64url";
    return nullptr;
  }
  std::string point = "\x04" + *x + *y;
  ParamBuilder b;
  if (b.bld == nullptr || !OSSL_PARAM_BLD_push_utf8_string(b.bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
      !OSSL_PARAM_BLD_push_octet_string(b.bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) ||
      (b.params = OSSL_PARAM_BLD_to_param(b.bld)) == nullptr) {
    *why = "EC key could not be built";
    return nullptr;
  }
  EVP_PKEY* pkey = FromParams("EC", b.params);
  if (pkey == nullptr) {
    *why = "EC point is not on P-256";
    return nullptr;
  }
  EVP_PKEY_CTX* check = EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr);
  const bool valid = check != nullptr && EVP_PKEY_public_check(check) == 1;
  EVP_PKEY_CTX_free(check);
  if (!valid) {
    *why = "EC point is not on P-256";
    EVP_PKEY_free(pkey);
    return nullptr;
  }
  return pkey;
}

}  // namespace

JwkSet::JwkSet() = default;
JwkSet::~JwkSet() = default;
JwkSet::JwkSet(JwkSet&&) noexcept = default;
JwkSet& JwkSet::operator=(JwkSet&&) noexcept = default;

Result<JwkSet> JwkSet::Parse(std::string_view text, std::vector<std::string>* skipped) {
  const json doc = ParseJson(text);
  if (!doc.is_object() || !doc.contains("keys") || !doc["keys"].is_array()) {
    return InvalidArgument("not a JWKS: expected {\"keys\": [...]}");
  }
  JwkSet set;
  std::size_t index = 0;
  for (const json& jwk : doc["keys"]) {
    const std::string where = "key " + std::to_string(index++);
    auto skip = [&](const std::string& why) {
      if (skipped) skipped->push_back(where + ": " + why);
    };
    if (!jwk.is_object() || !jwk.contains("kty") || !jwk["kty"].is_string()) {
      skip("not a JWK (no kty)");
      continue;
    }
    if (jwk.contains("use") && jwk["use"] != "sig") {
      skip("not for signatures");
      continue;
    }
    auto key = std::make_shared<Key>();
    if (jwk.contains("kid")) {
      if (!jwk["kid"].is_string() || jwk["kid"].get<std::string>().size() > 256) {
        skip("kid is not a string of at most 256 bytes");
        continue;
      }
      key->kid = jwk["kid"].get<std::string>();
    }
    const std::string kty = jwk["kty"].get<std::string>();
    std::string why;
    if (kty == "RSA") {
      key->alg = Alg::kRS256;
      key->pkey = RsaKey(jwk, &why);
    } else if (kty == "EC") {
      key->alg = Alg::kES256;
      key->pkey = EcKey(jwk, &why);
    } else {
      why = "key type " + kty.substr(0, 16) + " is not supported (RSA and EC P-256 are)";
    }
    if (key->pkey == nullptr) {
      skip(why);
      continue;
    }
    if (jwk.contains("alg") && jwk["alg"] != AlgName(key->alg)) {
      skip("alg " + jwk["alg"].dump() + " does not fit a " + kty + " key (" + std::string(AlgName(key->alg)) + ")");
      continue;
    }
    if (!key->kid.empty() && set.HasKid(key->kid)) {
      skip("kid " + key->kid + " appears twice");
      continue;
    }
    set.keys_.push_back(std::move(key));
  }
  return set;
}

bool JwkSet::HasKid(std::string_view kid) const {
  for (const auto& k : keys_) {
    if (k->kid == kid) return true;
  }
  return false;
}

std::vector<std::string> JwkSet::Describe() const {
  std::vector<std::string> out;
  for (const auto& k : keys_) out.push_back((k->kid.empty() ? "(no kid)" : k->kid) + " (" + std::string(AlgName(k->alg)) + ")");
  return out;
}

// --- verification ---

namespace {

Status Refuse(JwtErrc reason, std::string message) { return Error(reason, "token refused: " + std::move(message)); }

bool VerifySignature(const JwkSet::Key& key, std::string_view signed_part, const std::string& signature) {
  std::string der;
  const unsigned char* sig = reinterpret_cast<const unsigned char*>(signature.data());
  std::size_t sig_len = signature.size();
  if (key.alg == Alg::kES256) {
    // JWS carries R || S (32 bytes each); OpenSSL verifies DER.
    if (signature.size() != 64) return false;
    ECDSA_SIG* es = ECDSA_SIG_new();
    BIGNUM* r = BN_bin2bn(sig, 32, nullptr);
    BIGNUM* s = BN_bin2bn(sig + 32, 32, nullptr);
    if (es == nullptr || r == nullptr || s == nullptr || ECDSA_SIG_set0(es, r, s) != 1) {
      BN_free(r);
      BN_free(s);
      ECDSA_SIG_free(es);
      return false;
    }
    const int len = i2d_ECDSA_SIG(es, nullptr);
    if (len <= 0) {
      ECDSA_SIG_free(es);
      return false;
    }
    der.resize(static_cast<std::size_t>(len));
    auto* p = reinterpret_cast<unsigned char*>(der.data());
    i2d_ECDSA_SIG(es, &p);
    ECDSA_SIG_free(es);
    sig = reinterpret_cast<const unsigned char*>(der.data());
    sig_len = der.size();
  } else if (static_cast<int>(signature.size()) != EVP_PKEY_get_size(key.pkey)) {
    return false;
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok = ctx != nullptr && EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key.pkey) == 1 &&
                  EVP_DigestVerify(ctx, sig, sig_len, reinterpret_cast<const unsigned char*>(signed_part.data()),
                                   signed_part.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

// A NumericDate: seconds since the epoch, an integer or a finite number.
bool Seconds(const json& j, std::int64_t* out) {
  if (j.is_number_integer()) {
    *out = j.get<std::int64_t>();
    return true;
  }
  if (j.is_number_float()) {
    const double d = j.get<double>();
    if (!std::isfinite(d) || d > 9e15 || d < -9e15) return false;
    *out = static_cast<std::int64_t>(std::floor(d));
    return true;
  }
  return false;
}

const json* AtPath(const json& j, std::string_view path) {
  const json* at = &j;
  while (!path.empty()) {
    const auto dot = path.find('.');
    const std::string part(path.substr(0, dot));
    if (!at->is_object()) return nullptr;
    const auto it = at->find(part);
    if (it == at->end()) return nullptr;
    at = &*it;
    path = dot == std::string_view::npos ? std::string_view{} : path.substr(dot + 1);
  }
  return at;
}

}  // namespace

std::string JwtVerifier::PeekKid(std::string_view token) {
  const auto dot = token.find('.');
  if (dot == std::string_view::npos || dot > 4096) return "";
  auto header = FromBase64Url(token.substr(0, dot));
  if (!header.ok()) return "";
  const json h = ParseJson(*header);
  if (!h.is_object() || !h.contains("kid") || !h["kid"].is_string()) return "";
  return h["kid"].get<std::string>().substr(0, 256);
}

Result<JwtClaims> JwtVerifier::Verify(std::string_view token, const JwkSet& keys, const JwtPolicy& policy,
                                      std::int64_t now) {
  if (token.size() > policy.max_token_bytes) return Refuse(JwtErrc::kMalformed, "longer than the limit");
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return Refuse(JwtErrc::kMalformed, "not three dot-separated parts");
  }
  auto header_text = FromBase64Url(token.substr(0, dot1));
  auto payload_text = FromBase64Url(token.substr(dot1 + 1, dot2 - dot1 - 1));
  auto signature = FromBase64Url(token.substr(dot2 + 1));
  if (!header_text.ok() || !payload_text.ok() || !signature.ok()) {
    return Refuse(JwtErrc::kMalformed, "a part is not base64url");
  }
  const json header = ParseJson(*header_text);
  if (!header.is_object() || !header.contains("alg") || !header["alg"].is_string()) {
    return Refuse(JwtErrc::kMalformed, "the header is not a JSON object with alg");
  }
  const std::string alg = header["alg"].get<std::string>();
  if (alg != "RS256" && alg != "ES256") {
    // none, HS256 (a public key used as an HMAC secret), PS*, anything else.
    return Refuse(JwtErrc::kAlgorithm, "algorithm " + alg.substr(0, 16) + " is not accepted (RS256, ES256)");
  }
  if (header.contains("crit")) return Refuse(JwtErrc::kMalformed, "critical header extensions are not supported");
  std::string kid;
  if (header.contains("kid")) {
    if (!header["kid"].is_string()) return Refuse(JwtErrc::kMalformed, "kid is not a string");
    kid = header["kid"].get<std::string>();
  }
  if (signature->empty()) return Refuse(JwtErrc::kBadSignature, "no signature");

  // The key: by kid when the token names one, else every key of the
  // token's algorithm. The key's algorithm must be the token's.
  const std::string_view signed_part = token.substr(0, dot2);
  const JwkSet::Key* used = nullptr;
  bool kid_found = false, alg_found = false;
  for (const auto& key : keys.keys_) {
    if (!kid.empty() && key->kid != kid) continue;
    kid_found = true;
    if (AlgName(key->alg) != alg) {
      if (!kid.empty()) {
        return Refuse(JwtErrc::kAlgorithm, "key " + kid.substr(0, 64) + " is for " + std::string(AlgName(key->alg)) +
                                               ", the token says " + alg);
      }
      continue;
    }
    alg_found = true;
    if (VerifySignature(*key, signed_part, *signature)) {
      used = key.get();
      break;
    }
  }
  if (used == nullptr) {
    if (!kid_found) {
      return Refuse(JwtErrc::kUnknownKey,
                    kid.empty() ? std::string("the issuer has no keys") : "no key " + kid.substr(0, 64) + " of the issuer");
    }
    if (!alg_found) return Refuse(JwtErrc::kAlgorithm, "no key of the issuer is for " + alg);
    return Refuse(JwtErrc::kBadSignature, "the signature does not verify");
  }

  const json claims = ParseJson(*payload_text);
  if (!claims.is_object()) return Refuse(JwtErrc::kMalformed, "the payload is not a JSON object");
  if (!claims.contains("iss") || claims["iss"] != policy.issuer) return Refuse(JwtErrc::kWrongIssuer, "another issuer");
  bool audience = false;
  if (auto aud = claims.find("aud"); aud != claims.end()) {
    if (aud->is_string()) audience = *aud == policy.audience;
    if (aud->is_array()) {
      for (const auto& a : *aud) audience = audience || (a.is_string() && a == policy.audience);
    }
  }
  if (!audience) return Refuse(JwtErrc::kWrongAudience, "not for this audience");
  JwtClaims out;
  if (!claims.contains("exp") || !Seconds(claims["exp"], &out.expires_at)) {
    return Refuse(JwtErrc::kMissingClaim, "no exp");
  }
  const std::int64_t leeway = policy.leeway_seconds;
  if (now > out.expires_at + leeway) return Refuse(JwtErrc::kExpired, "expired");
  std::int64_t t = 0;
  if (claims.contains("nbf")) {
    if (!Seconds(claims["nbf"], &t)) return Refuse(JwtErrc::kMalformed, "nbf is not a number");
    if (now + leeway < t) return Refuse(JwtErrc::kNotYetValid, "not valid yet (nbf)");
  }
  if (claims.contains("iat")) {
    if (!Seconds(claims["iat"], &t)) return Refuse(JwtErrc::kMalformed, "iat is not a number");
    if (t > now + leeway) return Refuse(JwtErrc::kNotYetValid, "issued in the future (iat)");
  }
  if (!claims.contains("sub") || !claims["sub"].is_string() || claims["sub"].get<std::string>().empty() ||
      claims["sub"].get<std::string>().size() > 256) {
    return Refuse(JwtErrc::kMissingClaim, "no subject (sub)");
  }
  out.subject = claims["sub"].get<std::string>();
  out.kid = used->kid;
  out.algorithm = alg;
  for (const char* field : {"preferred_username", "email"}) {
    if (auto it = claims.find(field); it != claims.end() && it->is_string() && out.name.empty()) {
      out.name = it->get<std::string>().substr(0, 256);
    }
  }
  for (auto [field, target] : {std::pair{"nonce", &out.nonce}, {"email", &out.email}}) {
    if (auto it = claims.find(field); it != claims.end() && it->is_string()) *target = it->get<std::string>().substr(0, 256);
  }
  if (const json* roles = AtPath(claims, policy.role_claim)) {
    if (roles->is_string()) out.roles.push_back(roles->get<std::string>());
    if (roles->is_array()) {
      for (const auto& r : *roles) {
        if (r.is_string() && out.roles.size() < 64) out.roles.push_back(r.get<std::string>());
      }
    }
  }
  return out;
}

}  // namespace bzzz::security
