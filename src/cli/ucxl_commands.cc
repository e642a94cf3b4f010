#include "cli/ucxl_commands.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "base/json.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "ucxl/address.h"

namespace bzzz::cli {

using nlohmann::json;

namespace {

bool CheckAddress(const std::string& text, bool wildcards_ok = true) {
  ucxl::AddressError why;
  auto a = ucxl::Parse(text, &why);
  if (!a.ok()) {
    PrintError(a.status().message());
    return false;
  }
  if (!wildcards_ok && a->HasWildcard()) {
    PrintError("invalid UCXL address: address: any/* is only for discover patterns");
    return false;
  }
  return true;
}

// A UCXI answer: the data of a success envelope, or the error printed (with
// its UCXL code) and `code` set.
std::optional<json> UcxiCall(const ClientOptions& options, const char* method, const std::string& path,
                             const std::string& body, int* code,
                             const std::string& content_type = "application/json") {
  auto response = Call(options, method, path, body, content_type);
  if (!response.ok()) {
    PrintError(response.status().message());
    *code = kExitUnreachable;
    return std::nullopt;
  }
  const json j = ParseJson(response->body);
  if (response->status < 300 && j.is_object() && j.contains("response")) return j["response"];
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    PrintError(j["error"].value("code", "") + ": " + j["error"].value("message", ""));
  } else {
    PrintError("HTTP " + std::to_string(response->status) + ": " + response->body);
  }
  *code = response->status == 401 || response->status == 403 ? kExitAuth : kExitFailure;
  return std::nullopt;
}

void PrintVersions(const json& results) {
  for (const auto& r : results) {
    const json& v = r["version"];
    std::printf("%-60s v%-4llu %-24s %8llu B  %s\n", r.value("address", "").c_str(),
                static_cast<unsigned long long>(v.value("number", 0ull)), v.value("content_type", "").c_str(),
                static_cast<unsigned long long>(v.value("size", 0ull)), v.value("created_at", "").c_str());
  }
}

int Ucxl(const ClientOptions& options, const std::string& op, const std::string& arg, const std::string& file,
         const std::string& content, const std::string& content_type, long long steps, int limit,
         bool as_json) {
  const bool pattern_op = op == "discover";
  if (op != "search" && !CheckAddress(arg, pattern_op)) return kExitUsage;
  int code = kExitOk;
  std::optional<json> r;
  if (op == "get") {
    r = UcxiCall(options, "GET", "/ucxi/v1/get?address=" + PercentEncode(arg), "", &code);
  } else if (op == "put") {
    if (file.empty() && content.empty()) {
      PrintError("put needs --file or --content");
      return kExitUsage;
    }
    std::string body = content;
    if (!file.empty()) {
      std::ifstream in(file, std::ios::binary);
      if (!in) {
        PrintError("cannot read " + file);
        return kExitUsage;
      }
      std::ostringstream buf;
      buf << in.rdbuf();
      body = buf.str();
    }
    r = UcxiCall(options, "PUT", "/ucxi/v1/put?address=" + PercentEncode(arg), body, &code, content_type);
  } else if (op == "delete") {
    r = UcxiCall(options, "DELETE", "/ucxi/v1/delete?address=" + PercentEncode(arg), "", &code);
  } else if (op == "navigate") {
    r = UcxiCall(options, "GET",
                 "/ucxi/v1/navigate?address=" + PercentEncode(arg) + "&steps=" + std::to_string(steps), "",
                 &code);
  } else if (op == "search") {
    r = UcxiCall(options, "GET",
                 "/ucxi/v1/search?q=" + PercentEncode(arg) + "&limit=" + std::to_string(limit), "", &code);
  } else if (op == "announce") {
    r = UcxiCall(options, "POST", "/ucxi/v1/announce", json{{"address", arg}}.dump(), &code);
  } else if (op == "discover") {
    r = UcxiCall(options, "GET",
                 "/ucxi/v1/discover?pattern=" + PercentEncode(arg) + "&limit=" + std::to_string(limit), "",
                 &code);
  }
  if (!r) return code;
  if (as_json) {
    std::cout << r->dump(2) << "\n";
    return kExitOk;
  }
  const json& data = (*r)["data"];
  if (op == "get" || op == "navigate") {
    std::fprintf(stderr, "%s (%s, from %s)\n", data.value("address", "").c_str(),
                 data["version"].value("content_type", "").c_str(), data.value("source", "").c_str());
    std::cout << data.value("content", "");
    if (data.value("encoding", "") == "base64")
      std::fprintf(stderr, "\n(base64: the content is not UTF-8)\n");
  } else if (op == "search" || op == "discover") {
    PrintVersions(data["results"]);
    if (data.contains("providers")) std::printf("providers: %s\n", data["providers"].dump().c_str());
  } else {
    std::printf("%s: %s\n", r->value("code", "").c_str(), r->value("message", "").c_str());
    if (data.contains("address")) std::printf("%s\n", data["address"].get<std::string>().c_str());
  }
  return kExitOk;
}

}  // namespace

struct UcxlCommands::Args {
  ClientArgs client;
  std::string arg, file, content, type = "text/plain; charset=utf-8";
  long long steps = -1;
  int limit = 100;
  bool as_json = false;
  std::vector<std::pair<std::string, CLI::App*>> ops;
};

UcxlCommands::UcxlCommands(CLI::App& app) : args_(std::make_unique<Args>()) {
  Args& a = *args_;
  auto* ucxl_cmd = app.add_subcommand("ucxl", "read and write context at UCXL addresses (UCXI)");
  ucxl_cmd->require_subcommand(1);
  for (const auto& [op, help, positional] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"get", "print the content an address names", "address"},
           {"put", "store content (--file or --content) as the next version", "address"},
           {"delete", "delete (a tombstone version; the history stays)", "address"},
           {"navigate", "step back (--steps -N) or forward (--steps N) from an address", "address"},
           {"search", "search the latest versions (metadata and content)", "text"},
           {"announce", "provide an address's content in the DHT", "address"},
           {"discover", "list stored addresses matching a pattern (any/* wildcards)", "pattern"}}) {
    auto* c = ucxl_cmd->add_subcommand(op, help);
    AddClientOptions(c, a.client);
    c->add_option(positional, a.arg, positional)->required();
    c->add_flag("--json", a.as_json, "print the JSON answer");
    if (op == "put") {
      auto* f = c->add_option("--file", a.file, "file with the content");
      auto* t = c->add_option("--content", a.content, "the content");
      f->excludes(t);
      c->add_option("--content-type", a.type, "content type")->capture_default_str();
    }
    if (op == "navigate") c->add_option("--steps", a.steps, "versions to move")->capture_default_str();
    if (op == "search" || op == "discover") {
      c->add_option("--limit", a.limit, "at most this many")
          ->capture_default_str()
          ->check(CLI::Range(1, 1000));
    }
    a.ops.emplace_back(op, c);
  }
}

UcxlCommands::~UcxlCommands() = default;

std::optional<int> UcxlCommands::Run() {
  Args& a = *args_;
  for (const auto& [op, c] : a.ops) {
    if (*c)
      return Ucxl(ClientFrom(a.client), op, a.arg, a.file, a.content, a.type, a.steps, a.limit, a.as_json);
  }
  return std::nullopt;
}

}  // namespace bzzz::cli
