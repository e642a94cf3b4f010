// Fuzzes ParseJson (src/base/json.h), the gate for every JSON text the node
// takes from outside, and what the node then does with a value: copy,
// compare, dump (recursive in nlohmann). Properties: no crash; what is
// accepted nests within the limit and dumps to text that parses back to
// the same value.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "base/json.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string why;
  const nlohmann::json j = bzzz::ParseJson(text, &why);
  if (j.is_discarded()) {
    Check(!why.empty());
    return 0;
  }
  const nlohmann::json copy = j;
  Check(copy == j);
  const std::string dumped = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  Check(bzzz::JsonShapeProblem(dumped, bzzz::CurrentJsonLimits()).empty());
  const nlohmann::json again = bzzz::ParseJson(dumped);
  Check(!again.is_discarded());
  return 0;
}
