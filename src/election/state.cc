#include "election/state.h"
#include "base/file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/json.h"
#include "election/wire.h"

namespace bzzz::election {

namespace {

using nlohmann::json;

}  // namespace

std::string HardStateToJson(const HardState& s) {
  json j = {{"version", 1},
            {"cluster", s.cluster},
            {"term", s.term},
            {"voted_for", s.voted_for},
            {"electorate",
             {{"config", json::array({s.electorate.id.term, s.electorate.id.version})},
              {"members", s.electorate.members}}}};
  return j.dump(2) + "\n";
}

Result<HardState> HardStateFromJson(std::string_view text) {
  json j = ParseJson(text);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument("not a JSON object");
  HardState s;
  try {
    if (j.at("version").get<int>() != 1) return InvalidArgument("field 'version': expected 1");
    s.cluster = j.at("cluster").get<std::string>();
    s.term = j.at("term").get<std::uint64_t>();
    s.voted_for = j.at("voted_for").get<std::string>();
    const json& e = j.at("electorate");
    const json& config = e.at("config");
    if (!config.is_array() || config.size() != 2)
      return InvalidArgument("field 'electorate.config': not [term, version]");
    s.electorate.id = ConfigId{config[0].get<std::uint64_t>(), config[1].get<std::uint64_t>()};
    s.electorate.members = e.at("members").get<std::vector<std::string>>();
  } catch (const json::exception& ex) {
    return InvalidArgument(std::string("missing or mistyped field: ") + ex.what());
  }
  if (!std::is_sorted(s.electorate.members.begin(), s.electorate.members.end()) ||
      std::adjacent_find(s.electorate.members.begin(), s.electorate.members.end()) !=
          s.electorate.members.end()) {
    return InvalidArgument("field 'electorate.members': not sorted and unique");
  }
  if (s.electorate.Empty() != s.electorate.members.empty()) {
    return InvalidArgument("field 'electorate': members and version disagree");
  }
  if (s.electorate.members.size() > kMaxMembers)
    return InvalidArgument("field 'electorate.members': too many");
  return s;
}

Status FileStateStore::Save(const HardState& state) {
  Status s = WriteFileAtomic(path_, HardStateToJson(state), 0600);
  return s.ok() ? s : Internal(s.message());
}

Result<HardState> FileStateStore::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return NotFound("no election state at " + path);
    return Internal("cannot read " + path);
  }
  std::ostringstream text;
  text << in.rdbuf();
  auto state = HardStateFromJson(text.str());
  if (!state.ok()) {
    return InvalidArgument("damaged election state " + path + ": " + state.status().message() +
                           " (docs/election.md: recovering a damaged election state)");
  }
  return state;
}

}  // namespace bzzz::election
