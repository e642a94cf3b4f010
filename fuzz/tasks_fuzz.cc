// Fuzzes what the tasks subsystem parses from outside: the submit body
// (POST /api/v1/tasks), stored task documents, and cluster load reports.
// Properties: no crash; what is accepted re-encodes to something that
// decodes to the same value.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/json.h"
#include "tasks/cluster.h"
#include "tasks/codec.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace bzzz::tasks;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // The first byte picks the parser, the rest is its input.
  if (text.empty()) return 0;
  const std::string_view in = text.substr(1);
  switch (static_cast<unsigned char>(text[0]) % 3) {
    case 0: {
      auto r = ParseSubmitBody(in, "");
      if (r.ok()) {
        Check(!r->executor.empty());
        Check(!r->input.empty());
        Check(nlohmann::json::accept(r->input));
      }
      break;
    }
    case 1: {
      const auto j = nlohmann::json::parse(in, nullptr, false);
      if (j.is_discarded()) break;
      auto t = TaskFromJson(j);
      if (t.ok()) {
        auto again = TaskFromJson(TaskToJson(*t));
        Check(again.ok());
        Check(TaskToJson(*again) == TaskToJson(*t));
        // The task writer's direct document is the same object.
        Check(bzzz::ParseJson(TaskDocument(*t)) == bzzz::ParseJson(bzzz::DumpJson(TaskToJson(*t))));
      }
      break;
    }
    case 2: {
      auto r = DecodeReport(in);
      if (r.ok()) {
        auto again = DecodeReport(EncodeReport(*r));
        Check(again.ok());
        Check(EncodeReport(*again) == EncodeReport(*r));
      }
      break;
    }
  }
  return 0;
}
