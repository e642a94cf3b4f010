// The election's wire format: one compact JSON object per message, carried
// in a signed P2P frame on bzzz/election/v1 (docs/election.md). The sender
// is not in the payload: receivers take it from the frame's verified key.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"
#include "election/election.h"

namespace bzzz::election {

inline constexpr std::string_view kMessageType = "election";  // P2P envelope type
inline constexpr std::size_t kMaxMembers = 1024;
inline constexpr std::size_t kMaxIdBytes = 128;

std::string EncodeMessage(const Message& message);

// InvalidArgument naming the field for anything EncodeMessage would not
// write: unknown type, wrong JSON types, out-of-range numbers, unsorted or
// oversized member lists. `from` is left empty.
Result<Message> DecodeMessage(std::string_view bytes);

}  // namespace bzzz::election
