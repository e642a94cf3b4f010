// Fuzz target: the membership statements (cluster/credential.h) and the
// check every P2P frame passes. Byte 0 picks what the rest is: 0 a
// credential, 1 a join token's text, 2 a revocation, 3 base64url text, 4 a
// credential checked by a Membership; 5-7 the same three statements signed
// with a fixed cluster key (so the parser behind the signature sees
// arbitrary but authentic bodies); 8 the durable state file
// (<data_dir>/cluster/membership.json) as Membership::Open reads it. Nothing
// may crash; whatever decodes must re-encode to the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "cluster/credential.h"
#include "scratch.h"
#include "cluster/membership.h"

namespace {

using namespace bzzz::cluster;

std::string SignedBody(const ClusterAuthority& ca, std::string body) {
  const auto sig = ca.Sign(body);
  body.append(reinterpret_cast<const char*>(sig.data()), sig.size());
  return body;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const ClusterAuthority ca = ClusterAuthority::Generate();
  static const std::shared_ptr<Membership> member = [] {
    auto m = Membership::Open("").value();
    (void)m->Adopt(ca.public_key());
    return m;
  }();
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  Key sender{};
  switch (data[0] % 9) {
    case 0:
      (void)DecodeCredential(rest, ca.public_key());
      break;
    case 1:
      (void)DecodeJoinToken(rest);
      break;
    case 2:
      (void)DecodeRevocation(rest, ca.public_key());
      break;
    case 3:
      (void)FromBase64Url(rest);
      break;
    case 4:
      (void)member->Check(rest, sender, 0);
      break;
    case 5: {
      // "BZC1" + the cluster key + the fuzzer's body, signed.
      std::string body = "BZC1" + std::string(ca.public_key().begin(), ca.public_key().end()) + rest;
      const std::string bytes = SignedBody(ca, body);
      auto c = DecodeCredential(bytes, ca.public_key());
      if (c.ok() && EncodeCredential(*c, ca) != bytes) __builtin_trap();
      break;
    }
    case 6: {
      std::string body = "BZR1" + std::string(ca.public_key().begin(), ca.public_key().end()) + rest;
      const std::string bytes = SignedBody(ca, body);
      auto r = DecodeRevocation(bytes, ca.public_key());
      if (r.ok() && EncodeRevocation(*r, ca) != bytes) __builtin_trap();
      break;
    }
    case 7: {
      std::string body = "BZT1" + std::string(ca.public_key().begin(), ca.public_key().end()) + rest;
      const std::string text = "bzzz-join-1." + Base64Url(SignedBody(ca, body));
      auto t = DecodeJoinToken(text);
      if (t.ok() && EncodeJoinToken(*t, ca) != text) __builtin_trap();
      break;
    }
    case 8: {
      static const FuzzScratch scratch("cluster-fuzz");
      {
        std::ofstream out(scratch.dir + "/membership.json", std::ios::binary | std::ios::trunc);
        out << rest;
      }
      (void)Membership::Open(scratch.dir);
      break;
    }
  }
  return 0;
}
