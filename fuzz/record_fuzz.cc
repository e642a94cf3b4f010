// Fuzz target: what the record store trusts least (dht/record_format.h).
// Byte 0 picks: even, the fuzzer's bytes are the "meta" JSON and content of
// a record frame properly signed for the name "fuzz/record" (so Assemble's
// checks behind the signature see arbitrary but authentic input), followed
// by chunks cut from the rest; odd, the bytes are a held-record file read
// back by ReadBlobs. Nothing may crash; whatever assembles must hold
// content whose hash and size match its meta.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "dht/record_format.h"
#include "scratch.h"
#include "p2p/identity.h"
#include "p2p/wire.h"
#include "security/authenticator.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace bzzz;
  static const p2p::NodeIdentity key = p2p::NodeIdentity::Generate();
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    // meta \0 content \0 chunk \0 chunk ...
    std::vector<std::string> parts;
    std::size_t from = 0;
    for (std::size_t at; (at = rest.find('\0', from)) != std::string::npos; from = at + 1) {
      parts.push_back(rest.substr(from, at - from));
    }
    parts.push_back(rest.substr(from));
    p2p::Frame f;
    f.kind = p2p::FrameKind::kRecord;
    f.sender = key.public_key();
    f.seq = 1;
    f.topic = "fuzz/record";
    f.messages.push_back({"meta", 0, 0, parts[0]});
    if (parts.size() > 1) f.messages.push_back({"content", 0, 0, parts[1]});
    auto frame = p2p::EncodeFrame(f, key);
    if (!frame.ok()) return 0;
    std::vector<p2p::Bytes> blobs = {*frame};
    for (std::size_t i = 2; i < parts.size(); ++i) blobs.emplace_back(parts[i].begin(), parts[i].end());
    dht::internal::RawRecord out;
    if (dht::internal::Assemble("fuzz/record", blobs, &out).empty()) {
      if (security::Sha256Hex(out.record.content) != out.record.sha256) __builtin_trap();
    }
    return 0;
  }
  static const FuzzScratch scratch("record-fuzz");
  const std::string path = scratch.dir + "/held.rec";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << rest;
  }
  std::int64_t expires = 0;
  std::vector<p2p::Bytes> blobs;
  (void)dht::internal::ReadBlobs(path, dht::internal::kHeldMagic, &expires, &blobs);
  return 0;
}
