// The signed frame: the unit every node puts into the DHT (pubsub batches,
// presence, direct messages, records, provider records). docs/p2p.md
// describes the layout byte by byte:
//
//   "BZ2" kind(1) | sender Ed25519 public key (32) | seq u64 | sent_at_ns u64
//   | sender's cluster credential (varint length + bytes; empty only in a
//     join request) | topic (varint length + bytes) | count (varint)
//   | count x { type (varint+bytes) | published_us u64 | hop_count u8 | data (varint+bytes) }
//   | Ed25519 signature (64) over the SHA-256 digest of everything before it
//
// Integers are little-endian. One signature covers the whole batch, so a
// receiver verifies once per frame, not once per message. The credential
// (cluster/credential.h) says what the sender is in its cluster; the P2P
// node checks it before it stores, delivers or believes anything. A direct message
// travels as "BZS1" + a sealed box (X25519) of a signed frame of kind kDirect.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "p2p/identity.h"

namespace bzzz::p2p {

enum class FrameKind : std::uint8_t {
  kPubsub = 1,
  kPresence = 2,
  kDirect = 3,
  kRecord = 4,
  kProvider = 5,
  kJoin = 6,  // a node without a credential asks to be admitted (carries a join token)
  kLink = 7,  // a member-link handshake: proves the key over the other end's challenge (p2p/mesh.h)
};

inline constexpr std::size_t kMaxTopicBytes = 1024;  // pubsub topics: 256 (ValidateTopic); record names: 1024
inline constexpr std::size_t kMaxTypeBytes = 64;
inline constexpr std::size_t kMaxCredentialBytes = 256;
inline constexpr std::size_t kMaxFrameMessages = 4096;
// OpenDHT refuses values over 64 KiB; the sealed-box and frame overheads fit in the rest.
inline constexpr std::size_t kMaxFrameBytes = 64 * 1024 - 128;

// The envelope of SPEC §3.3: {type, from, timestamp, data, hop_count}.
struct Envelope {
  std::string type;
  std::string from;           // sender node id (derived from the frame's key)
  std::int64_t timestamp_ms = 0;  // when the sender published it (unix ms)
  std::string data;           // opaque; JSON by convention
  std::uint8_t hop_count = 0;
};

struct FrameMessage {
  std::string type;
  std::int64_t published_us = 0;  // unix microseconds
  std::uint8_t hop_count = 0;
  std::string data;
};

struct Frame {
  FrameKind kind = FrameKind::kPubsub;
  PublicKey sender{};
  std::uint64_t seq = 0;
  std::int64_t sent_at_ns = 0;
  std::string credential;  // the sender's (cluster/credential.h)
  std::string topic;
  std::vector<FrameMessage> messages;
};

// Bytes a message adds to a frame (for batching decisions).
std::size_t EncodedMessageSize(const FrameMessage& message);
// Bytes of a frame without its messages (a credential of the largest size included).
std::size_t FrameOverhead(std::string_view topic);

// Serializes and signs. InvalidArgument when a field is out of bounds or
// the frame would exceed kMaxFrameBytes.
Result<Bytes> EncodeFrame(const Frame& frame, const NodeIdentity& signer);
// Signs an already laid out frame body (everything before the signature)
// and appends the signature: for tools and fuzzers that forge layouts.
void SignFrameBody(Bytes& body, const NodeIdentity& signer);

enum class DecodeError { kNone, kMalformed, kBadSignature };

struct Decoded {
  DecodeError error = DecodeError::kNone;
  std::string reason;  // for kMalformed / kBadSignature
  Frame frame;
  bool ok() const { return error == DecodeError::kNone; }
};

// How a frame's origin is established.
enum class Origin {
  kSignature,  // the Ed25519 signature must verify (DHT, forwarded, repaired)
  // The bytes came over an authenticated member link from the key in the
  // frame's sender field (Mesh: the link's MAC verified and the link peer
  // is that sender): the signature is not checked again.
  kAuthenticatedLink,
};

// Parses and verifies. Never throws; any input is safe.
Decoded DecodeFrame(const std::uint8_t* data, std::size_t size, Origin origin = Origin::kSignature);
// Only the header fields (kind, sender, seq), without verifying: for the
// DHT edit policy, which compares a stored frame with its replacement.
bool PeekFrameHeader(const std::uint8_t* data, std::size_t size, FrameKind* kind, PublicKey* sender,
                     std::uint64_t* seq);

// What a link needs to route a frame before verifying it: the header, the
// topic and the message count. False on anything malformed. Nothing here
// is trusted until DecodeFrame has verified the same bytes.
struct FrameRoute {
  FrameKind kind = FrameKind::kPubsub;
  PublicKey sender{};
  std::uint64_t seq = 0;
  std::string topic;
  std::uint64_t messages = 0;
};
bool PeekFrameRoute(const std::uint8_t* data, std::size_t size, FrameRoute* route);

// Direct messages: seal a signed frame to the recipient, and open one.
Result<Bytes> SealFrame(const Bytes& signed_frame, const PublicKey& recipient);
bool IsSealed(const std::uint8_t* data, std::size_t size);
Result<Bytes> UnsealFrame(const std::uint8_t* data, std::size_t size, const NodeIdentity& recipient);

}  // namespace bzzz::p2p
