// Fuzz target: what an OIDC client or issuer controls (security/jwt.h).
// Byte 0 picks what the rest is: even, a bearer token checked against a
// fixed set of keys (an RSA and an EC key, parsed from a JWKS); odd, a JWKS
// document. Nothing may crash or leak, and nothing may verify: the fuzzer
// has no private key, so an accepted token is a forgery (trap).
#include <cstddef>
#include <cstdint>
#include <string>

#include "security/jwt.h"

namespace {

// Public keys only (RFC 7517 appendix A.1 style values made for this target).
constexpr char kJwks[] =
    R"({"keys":[{"kty":"EC","crv":"P-256","kid":"ec","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",)"
    R"("y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","use":"sig"},)"
    R"({"kty":"RSA","kid":"rsa","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB"}]})";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace bzzz::security;
  static const JwkSet keys = JwkSet::Parse(kJwks).value();
  static const JwtPolicy policy = [] {
    JwtPolicy p;
    p.issuer = "https://idp.test";
    p.audience = "bzzz";
    p.role_claim = "realm_access.roles";
    return p;
  }();
  if (keys.size() != 2) __builtin_trap();  // both public keys must load, or nothing is exercised
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 1) == 0) {
    (void)JwtVerifier::PeekKid(rest);
    if (JwtVerifier::Verify(rest, keys, policy, 1'800'000'000).ok()) __builtin_trap();  // a forgery passed
  } else {
    std::vector<std::string> skipped;
    auto set = JwkSet::Parse(rest, &skipped);
    if (set.ok()) (void)set->Describe();
  }
  return 0;
}
