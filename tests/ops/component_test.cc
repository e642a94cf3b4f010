// ops::Attach: what a component contributes reaches the node's router,
// health registry, status sections and shutdown sequence, and nothing
// registered keeps a destroyed component alive or reaches into it.
#include "ops/component.h"

#include <gtest/gtest.h>

#include <atomic>

namespace bzzz::ops {
namespace {

using namespace std::chrono_literals;

class FakeComponent final : public Component {
 public:
  explicit FakeComponent(std::atomic<int>* steps_run) : steps_run_(steps_run) {}
  std::string_view Name() const override { return "fake"; }
  Status RegisterRoutes(http::Router& router) override {
    return http::AddRoute(router, http::Method::kGet, "/api/v1/fake", "fake:read", "a fake route",
                          [](http::Request&) { return http::Response::Json(200, "{}"); })
               ? Status::Ok()
               : InvalidArgument("route refused");
  }
  std::vector<HealthCheckSpec> HealthChecks(const config::OperationsConfig&) override {
    HealthCheckSpec spec;
    spec.name = "fake-health";
    spec.fn = [] { return CheckOutcome::Healthy("fine"); };
    return {spec};
  }
  std::vector<std::string> StatusSections() const override { return {"fake", "fake2"}; }
  std::string StatusJson(std::string_view section) const override {
    return section == "fake" ? R"({"n":1})" : R"({"n":2})";
  }
  std::vector<ShutdownStep> ShutdownSteps(const config::Config&) override {
    return {{"fake.stop", kPriorityStopServices, 1s, [this] {
               ++*steps_run_;
               return Status::Ok();
             }}};
  }

 private:
  std::atomic<int>* steps_run_;
};

TEST(ComponentTest, AttachWiresEverythingAndHoldsTheComponentWeakly) {
  config::Config config;
  http::Router router;
  HealthRegistry health(nullptr);
  std::vector<StatusSection> sections;
  ShutdownCoordinator shutdown;
  std::atomic<int> steps_run{0};
  auto component = std::make_shared<FakeComponent>(&steps_run);
  ASSERT_TRUE(Attach(component, config, {router, health, sections, shutdown}).ok());

  EXPECT_EQ(router.Match(http::Method::kGet, "/api/v1/fake").kind, http::RouteMatch::Kind::kFound);
  EXPECT_TRUE(health.Has("fake-health"));
  ASSERT_EQ(sections.size(), 2u);
  EXPECT_EQ(sections[0].name, "fake");
  EXPECT_EQ(sections[0].json(), R"({"n":1})");
  EXPECT_EQ(sections[1].json(), R"({"n":2})");
  ASSERT_EQ(shutdown.Handlers().size(), 1u);
  EXPECT_EQ(shutdown.Handlers()[0].name, "fake.stop");

  // A second attach of the same routes and checks is refused.
  EXPECT_FALSE(Attach(component, config, {router, health, sections, shutdown}).ok());

  // Gone: its sections render {}, its step does nothing.
  std::weak_ptr<FakeComponent> weak = component;
  component.reset();
  EXPECT_TRUE(weak.expired()) << "nothing registered keeps the component alive";
  EXPECT_EQ(sections[0].json(), "{}");
  ASSERT_TRUE(shutdown.Request("test").ok());
  ASSERT_TRUE(shutdown.WaitFor(5s));
  EXPECT_EQ(steps_run.load(), 0);
}

TEST(ComponentTest, StepsRunWhileTheComponentLives) {
  config::Config config;
  http::Router router;
  HealthRegistry health(nullptr);
  std::vector<StatusSection> sections;
  ShutdownCoordinator shutdown;
  std::atomic<int> steps_run{0};
  auto component = std::make_shared<FakeComponent>(&steps_run);
  ASSERT_TRUE(Attach(component, config, {router, health, sections, shutdown}).ok());
  ASSERT_TRUE(shutdown.Request("test").ok());
  ASSERT_TRUE(shutdown.WaitFor(5s));
  EXPECT_EQ(steps_run.load(), 1);
  EXPECT_FALSE(Attach(nullptr, config, {router, health, sections, shutdown}).ok());
}

}  // namespace
}  // namespace bzzz::ops
