// Fuzz target: the election's wire decoder (a message arrives inside a
// signed frame, but any member's bytes reach the parser) and the durable
// state parser. Properties: no crash, and whatever decodes re-encodes to
// something that decodes to the same message.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "election/state.h"
#include "election/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (auto m = bzzz::election::DecodeMessage(input); m.ok()) {
    auto again = bzzz::election::DecodeMessage(bzzz::election::EncodeMessage(*m));
    if (!again.ok() || !(*again == *m)) std::abort();
  }
  if (auto s = bzzz::election::HardStateFromJson(input); s.ok()) {
    auto again = bzzz::election::HardStateFromJson(bzzz::election::HardStateToJson(*s));
    if (!again.ok() || !(*again == *s)) std::abort();
  }
  return 0;
}
