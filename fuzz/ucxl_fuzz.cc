// Fuzz target: the UCXL address parser. Properties: no crash; an accepted
// address formats to a string that parses back to the same address and
// formats to itself (the canonical form is a fixed point).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ucxl/address.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto a = bzzz::ucxl::Parse(input);
  if (!a.ok()) return 0;
  const std::string canonical = bzzz::ucxl::Format(*a);
  auto again = bzzz::ucxl::Parse(canonical);
  if (!again.ok() || !(*again == *a) || bzzz::ucxl::Format(*again) != canonical) std::abort();
  return 0;
}
