// Fuzz target: the configuration loader on arbitrary YAML or JSON text.
// LoadConfig must never crash or throw, whatever the document.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/loader.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  bzzz::config::LoadOptions options;
  options.text = std::string(reinterpret_cast<const char*>(data) + 1, size - 1);
  options.text_is_json = (data[0] & 1) != 0;
  auto result = bzzz::config::LoadConfig(options);
  if (result.ok()) {
    // What loads must render and load back.
    bzzz::config::LoadOptions again;
    again.text = bzzz::config::RenderConfig(result.config, bzzz::config::RenderFormat::kYaml, false);
    if (!bzzz::config::LoadConfig(again).ok()) __builtin_trap();
  }
  return 0;
}
