// The `http` executor: POSTs the task to a webhook; the answer is the result.
#include <nlohmann/json.hpp>

#include "base/json.h"
#include "executors/address_policy.h"
#include "executors/executors.h"
#include "http/client.h"

namespace bzzz::executors {

using nlohmann::json;

namespace {

class HttpExecutor final : public Executor {
 public:
  HttpExecutor(AddressPolicy policy, std::size_t max_response_bytes, std::shared_ptr<const SecretStore> secrets)
      : policy_(std::move(policy)), max_response_bytes_(max_response_bytes), secrets_(std::move(secrets)) {}
  std::string_view Kind() const override { return "http"; }

  Status Validate(std::string_view input) const override {
    json j = ParseJson(input);
    if (!j.is_object()) return InvalidArgument("input: must be an object {\"url\": ...}");
    auto url = j.find("url");
    if (url == j.end() || !url->is_string()) return InvalidArgument("input.url: required string");
    const auto u = url->get<std::string>();
    if ((u.rfind("http://", 0) != 0 && u.rfind("https://", 0) != 0) || u.size() > 2048 ||
        u.find_first_of(" \r\n\t") != std::string::npos) {
      return InvalidArgument("input.url: an http:// or https:// URL without spaces");
    }
    if (auto h = j.find("headers"); h != j.end()) {
      if (!h->is_object()) return InvalidArgument("input.headers: must be an object of strings");
      for (const auto& [k, v] : h->items()) {
        if (!v.is_string() || k.empty() || k.find_first_of(":\r\n") != std::string::npos ||
            v.get<std::string>().find_first_of("\r\n") != std::string::npos) {
          return InvalidArgument("input.headers." + k + ": a header name and string value without CR, LF or ':'");
        }
      }
    }
    return Status::Ok();
  }

  ExecResult Execute(const ExecContext& ctx) override {
    json j = ParseJson(ctx.input);
    http::ClientOptions options;
    options.url = j["url"].get<std::string>();
    options.user_agent = "bzzz-webhook";
    options.max_response_bytes = max_response_bytes_;
    options.connect_check = [this](std::string_view host, std::string_view ip) { return policy_.Check(host, ip); };
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(ctx.deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return {ExecResult::Outcome::kTimedOut, {}, "no time left"};
    options.timeout = left;
    if (j.contains("headers")) {
      for (const auto& [k, v] : j["headers"].items()) {
        auto value = secrets_->Resolve(v.get<std::string>());
        if (!value.ok()) return ExecResult::Failure("input.headers." + k + ": " + value.status().message());
        if (value->find_first_of("\r\n") != std::string::npos) {
          return ExecResult::Failure("input.headers." + k + ": the secret holds a line break");
        }
        options.headers.push_back(k + ": " + *value);
      }
    }
    json body = {{"task_id", ctx.task_id}, {"attempt", ctx.attempt}, {"input", j.value("body", json(nullptr))}};
    auto res = http::Call(options, "POST", "", DumpJson(body));
    if (!res.ok()) {
      if (res.status().code() == StatusCode::kTimeout) return {ExecResult::Outcome::kTimedOut, {}, res.status().message()};
      return ExecResult::Failure(res.status().message());
    }
    json answer = ParseJson(res->body);
    json result = {{"status", res->status}, {"body", answer.is_discarded() ? json(res->body) : answer}};
    if (res->status < 200 || res->status > 299) {
      return ExecResult::Failure("webhook answered " + std::to_string(res->status), DumpJson(result));
    }
    return ExecResult::Success(DumpJson(result));
  }

 private:
  AddressPolicy policy_;
  std::size_t max_response_bytes_;
  std::shared_ptr<const SecretStore> secrets_;
};

}  // namespace

Result<std::unique_ptr<Executor>> MakeHttpExecutor(const config::WebhookConfig& config,
                                                   std::shared_ptr<const SecretStore> secrets) {
  auto policy = AddressPolicy::Make(config.allow);
  if (!policy.ok()) return policy.status();
  if (!secrets) secrets = std::make_shared<SecretStore>();
  return std::unique_ptr<Executor>(
      std::make_unique<HttpExecutor>(std::move(policy).value(), config.max_response_bytes, std::move(secrets)));
}

}  // namespace bzzz::executors
