#include "p2p/wire.h"

#include <cstring>

#include <openssl/sha.h>

namespace bzzz::p2p {

namespace {

constexpr std::uint8_t kMagic[3] = {'B', 'Z', '2'};
constexpr std::uint8_t kSealedMagic[4] = {'B', 'Z', 'S', '1'};
constexpr std::size_t kHeaderBytes = 4 + 32 + 8 + 8;
constexpr std::size_t kSignatureBytes = 64;

std::size_t VarintSize(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

void PutVarint(Bytes& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<std::uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<std::uint8_t>(v));
}

void PutU64(Bytes& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

void PutString(Bytes& out, std::string_view s) {
  PutVarint(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

// A bounds-checked reader; every accessor fails instead of reading past the end.
class Reader {
 public:
  Reader(const std::uint8_t* data, std::size_t size) : p_(data), end_(data + size) {}

  bool Varint(std::uint64_t* v) {
    std::uint64_t result = 0;
    for (int shift = 0; shift < 35; shift += 7) {  // lengths fit in 5 bytes
      if (p_ == end_) return false;
      const std::uint8_t b = *p_++;
      result |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        // Minimal encodings only: one frame has exactly one byte form.
        if (b == 0 && shift > 0) return false;
        *v = result;
        return true;
      }
    }
    return false;
  }
  bool U64(std::uint64_t* v) {
    if (Left() < 8) return false;
    std::uint64_t r = 0;
    for (int i = 0; i < 8; ++i) r |= static_cast<std::uint64_t>(p_[i]) << (8 * i);
    p_ += 8;
    *v = r;
    return true;
  }
  bool U8(std::uint8_t* v) {
    if (p_ == end_) return false;
    *v = *p_++;
    return true;
  }
  bool String(std::string* s, std::size_t max) {
    std::uint64_t n;
    if (!Varint(&n) || n > max || n > Left()) return false;
    s->assign(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return true;
  }
  std::size_t Left() const { return static_cast<std::size_t>(end_ - p_); }

 private:
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

bool ValidKind(std::uint8_t k) { return k >= 1 && k <= 7; }

// What the signature covers: SHA-256 of the frame's bytes before it.
// (OpenSSL's SHA-256 uses the CPU's SHA extensions: a 48 KiB frame hashes
// in about 24 µs, where Ed25519's own SHA-512 passes over the whole frame
// took 140 µs to sign and 100 µs to verify; the pubsub path is bound by it.)
std::array<std::uint8_t, 32> Digest(const std::uint8_t* data, std::size_t size) {
  std::array<std::uint8_t, 32> d;
  SHA256(data, size, d.data());
  return d;
}

}  // namespace

std::size_t EncodedMessageSize(const FrameMessage& m) {
  return VarintSize(m.type.size()) + m.type.size() + 8 + 1 + VarintSize(m.data.size()) + m.data.size();
}

std::size_t FrameOverhead(std::string_view topic) {
  return kHeaderBytes + VarintSize(kMaxCredentialBytes) + kMaxCredentialBytes + VarintSize(topic.size()) +
         topic.size() + 3 + kSignatureBytes;
}

Result<Bytes> EncodeFrame(const Frame& frame, const NodeIdentity& signer) {
  if (frame.topic.size() > kMaxTopicBytes) return InvalidArgument("topic longer than 1024 bytes");
  if (frame.messages.empty()) return InvalidArgument("a frame carries at least one message");
  if (frame.credential.size() > kMaxCredentialBytes) return InvalidArgument("credential longer than 256 bytes");
  if (frame.messages.size() > kMaxFrameMessages) return InvalidArgument("too many messages in one frame");
  std::size_t size = FrameOverhead(frame.topic);
  for (const auto& m : frame.messages) {
    if (m.type.size() > kMaxTypeBytes) return InvalidArgument("message type longer than 64 bytes");
    size += EncodedMessageSize(m);
  }
  if (size > kMaxFrameBytes) {
    return InvalidArgument("frame of " + std::to_string(size) + " bytes exceeds the " +
                           std::to_string(kMaxFrameBytes) + "-byte limit");
  }
  Bytes out;
  out.reserve(size);
  out.insert(out.end(), kMagic, kMagic + 3);
  out.push_back(static_cast<std::uint8_t>(frame.kind));
  out.insert(out.end(), signer.public_key().begin(), signer.public_key().end());
  PutU64(out, frame.seq);
  PutU64(out, static_cast<std::uint64_t>(frame.sent_at_ns));
  PutString(out, frame.credential);
  PutString(out, frame.topic);
  PutVarint(out, frame.messages.size());
  for (const auto& m : frame.messages) {
    PutString(out, m.type);
    PutU64(out, static_cast<std::uint64_t>(m.published_us));
    out.push_back(m.hop_count);
    PutString(out, m.data);
  }
  const auto digest = Digest(out.data(), out.size());
  const Signature sig = signer.Sign(digest.data(), digest.size());
  out.insert(out.end(), sig.begin(), sig.end());
  return out;
}

void SignFrameBody(Bytes& body, const NodeIdentity& signer) {
  const auto digest = Digest(body.data(), body.size());
  const Signature sig = signer.Sign(digest.data(), digest.size());
  body.insert(body.end(), sig.begin(), sig.end());
}

bool PeekFrameHeader(const std::uint8_t* data, std::size_t size, FrameKind* kind, PublicKey* sender,
                     std::uint64_t* seq) {
  if (size < kHeaderBytes + kSignatureBytes || std::memcmp(data, kMagic, 3) != 0 || !ValidKind(data[3])) return false;
  *kind = static_cast<FrameKind>(data[3]);
  std::memcpy(sender->data(), data + 4, 32);
  Reader r(data + 36, 8);
  return r.U64(seq);
}

bool PeekFrameRoute(const std::uint8_t* data, std::size_t size, FrameRoute* route) {
  if (size > kMaxFrameBytes || !PeekFrameHeader(data, size, &route->kind, &route->sender, &route->seq)) return false;
  Reader r(data + 44, size - 44 - kSignatureBytes);
  std::uint64_t sent_at, count;
  std::string credential;
  if (!r.U64(&sent_at) || !r.String(&credential, kMaxCredentialBytes) || !r.String(&route->topic, kMaxTopicBytes) ||
      !r.Varint(&count) || count == 0 || count > kMaxFrameMessages) {
    return false;
  }
  route->messages = count;
  return true;
}

Decoded DecodeFrame(const std::uint8_t* data, std::size_t size, Origin origin) {
  Decoded d;
  auto malformed = [&d](std::string why) {
    d.error = DecodeError::kMalformed;
    d.reason = std::move(why);
    return d;
  };
  if (size > kMaxFrameBytes) return malformed("frame larger than the limit");
  FrameKind kind;
  if (!PeekFrameHeader(data, size, &kind, &d.frame.sender, &d.frame.seq)) return malformed("bad frame header");
  d.frame.kind = kind;
  if (origin == Origin::kSignature) {
    Signature sig;
    std::memcpy(sig.data(), data + size - kSignatureBytes, kSignatureBytes);
    const auto digest = Digest(data, size - kSignatureBytes);
    if (!NodeIdentity::Verify(d.frame.sender, digest.data(), digest.size(), sig)) {
      d.error = DecodeError::kBadSignature;
      d.reason = "signature does not verify";
      return d;
    }
  }
  Reader r(data + 44, size - 44 - kSignatureBytes);
  std::uint64_t sent_at, count;
  if (!r.U64(&sent_at)) return malformed("truncated header");
  d.frame.sent_at_ns = static_cast<std::int64_t>(sent_at);
  if (!r.String(&d.frame.credential, kMaxCredentialBytes)) return malformed("bad credential");
  if (!r.String(&d.frame.topic, kMaxTopicBytes)) return malformed("bad topic");
  if (!r.Varint(&count) || count == 0 || count > kMaxFrameMessages) return malformed("bad message count");
  d.frame.messages.resize(count);
  for (auto& m : d.frame.messages) {
    std::uint64_t ts;
    if (!r.String(&m.type, kMaxTypeBytes) || !r.U64(&ts) || !r.U8(&m.hop_count) || !r.String(&m.data, kMaxFrameBytes)) {
      return malformed("truncated message");
    }
    m.published_us = static_cast<std::int64_t>(ts);
  }
  if (r.Left() != 0) return malformed("trailing bytes after the messages");
  return d;
}

bool IsSealed(const std::uint8_t* data, std::size_t size) {
  return size >= 4 && std::memcmp(data, kSealedMagic, 4) == 0;
}

Result<Bytes> SealFrame(const Bytes& signed_frame, const PublicKey& recipient) {
  auto sealed = NodeIdentity::SealTo(recipient, signed_frame.data(), signed_frame.size());
  if (!sealed.ok()) return sealed.status();
  Bytes out(kSealedMagic, kSealedMagic + 4);
  out.insert(out.end(), sealed->begin(), sealed->end());
  return out;
}

Result<Bytes> UnsealFrame(const std::uint8_t* data, std::size_t size, const NodeIdentity& recipient) {
  if (!IsSealed(data, size)) return InvalidArgument("not a sealed frame");
  return recipient.Open(data + 4, size - 4);
}

}  // namespace bzzz::p2p
