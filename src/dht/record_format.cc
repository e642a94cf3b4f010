#include "dht/record_format.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "base/file.h"
#include "base/json.h"
#include "security/authenticator.h"

namespace bzzz::dht::internal {

using nlohmann::json;

std::string EncodeBlobs(const char magic[4], std::int64_t expires_ms, const std::vector<p2p::Bytes>& blobs) {
  std::string out(magic, 4);
  const auto put32 = [&out](std::uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); };
  out.append(reinterpret_cast<const char*>(&expires_ms), 8);
  put32(static_cast<std::uint32_t>(blobs.size()));
  for (const auto& b : blobs) {
    put32(static_cast<std::uint32_t>(b.size()));
    out.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  return out;
}

bool DecodeBlobs(std::string_view data, const char magic[4], std::int64_t* expires_ms, std::vector<p2p::Bytes>* blobs) {
  std::size_t at = 0;
  const auto take = [&](void* out, std::size_t n) {
    if (data.size() - at < n) return false;
    std::memcpy(out, data.data() + at, n);
    at += n;
    return true;
  };
  char m[4];
  std::uint32_t count = 0;
  if (!take(m, 4) || std::memcmp(m, magic, 4) != 0) return false;
  if (!take(expires_ms, 8) || !take(&count, 4)) return false;
  if (count == 0 || count > kMaxRecordBytes / 1000 + 2) return false;
  blobs->clear();
  for (std::uint32_t i = 0; i < count; ++i) {
    std::uint32_t len = 0;
    if (!take(&len, 4) || len > 64 * 1024) return false;
    p2p::Bytes b(len);
    if (!take(b.data(), len)) return false;
    blobs->push_back(std::move(b));
  }
  return at == data.size();
}

bool WriteBlobs(const std::filesystem::path& path, const char magic[4], std::int64_t expires_ms, const std::vector<p2p::Bytes>& blobs,
                bool durable) {
  return WriteFileAtomic(path.string(), EncodeBlobs(magic, expires_ms, blobs), 0600, durable).ok();
}

bool ReadBlobs(const std::filesystem::path& path, const char magic[4], std::int64_t* expires_ms, std::vector<p2p::Bytes>* blobs) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.eof() && in.fail()) return false;
  return DecodeBlobs(data, magic, expires_ms, blobs);
}

std::string Assemble(std::string_view name, std::vector<p2p::Bytes> blobs, RawRecord* out) {
  if (blobs.empty()) return "no values";
  const p2p::Decoded d = p2p::DecodeFrame(blobs[0].data(), blobs[0].size());
  if (!d.ok()) return "record frame: " + d.reason;
  const p2p::Frame& f = d.frame;
  if (f.kind != p2p::FrameKind::kRecord || f.topic != name || f.messages.empty() || f.messages[0].type != "meta") {
    return "not a record frame for this name";
  }
  const json meta = ParseJson(f.messages[0].data);
  if (!meta.is_object()) return "record meta is not JSON";
  Record r;
  r.name = std::string(name);
  r.writer = p2p::NodeIdOf(f.sender);
  r.written_at_ms = f.sent_at_ns / 1'000'000;
  try {
    r.content_type = meta.value("content_type", "");
    r.sha256 = meta.value("sha256", "");
    const auto size = meta.value("size", std::size_t{0});
    const auto keys = meta.value("chunks", std::vector<std::string>{});
    r.chunks = keys.size();
    if (keys.empty()) {
      if (f.messages.size() != 2 || f.messages[1].type != "content") return "inline record without content";
      r.content = f.messages[1].data;
    } else {
      if (blobs.size() != keys.size() + 1) return "record has " + std::to_string(blobs.size() - 1) + " of " +
                                                  std::to_string(keys.size()) + " chunks";
      r.content.reserve(size);
      for (std::size_t i = 0; i < keys.size(); ++i) {
        if (p2p::ChunkKey(blobs[i + 1].data(), blobs[i + 1].size()) != keys[i]) return "chunk does not match its key";
        r.content.append(reinterpret_cast<const char*>(blobs[i + 1].data()), blobs[i + 1].size());
      }
    }
    if (r.content.size() != size) return "content size differs from the record's";
  } catch (const json::exception& e) {
    return std::string("record meta: ") + e.what();
  }
  if (security::Sha256Hex(r.content) != r.sha256) return "content hash differs from the record's";
  out->record = std::move(r);
  out->blobs = std::move(blobs);
  return "";
}

std::string ValidateName(std::string_view name) {
  if (name.empty()) return "record name must not be empty";
  if (name.size() > kMaxNameBytes) return "record name longer than 1024 bytes";
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) return "record name contains a control character";
  }
  return "";
}

}  // namespace bzzz::dht::internal
