// Fuzz target: SHHH on whatever a task or a client writes (security/redact.h).
// The text goes through the built-in rules and one configured pattern, as
// text and as JSON. Nothing may crash; a JSON document stays a JSON
// document; redacting twice changes nothing more (a mask is never masked
// into something else).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "security/redact.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace bzzz::security;
  static const std::shared_ptr<const Redactor> redactor =
      Redactor::Create(*ParseRedactionPatterns({"corp=CORP-[0-9]{8}"}), nullptr).value();
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string once = redactor->Redact(text, RedactionSite::kLog);
  if (redactor->Redact(once, RedactionSite::kLog) != once) std::abort();
  const std::string json_out = redactor->RedactJson(text, RedactionSite::kTaskOutput);
  if (nlohmann::json::accept(text) && !nlohmann::json::accept(json_out)) std::abort();
  return 0;
}
