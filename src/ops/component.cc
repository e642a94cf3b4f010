#include "ops/component.h"

namespace bzzz::ops {

Status Attach(const std::shared_ptr<Component>& component, const config::Config& config, ComponentSinks sinks) {
  if (!component) return InvalidArgument("no component");
  if (Status s = component->RegisterRoutes(sinks.router); !s.ok()) return s;
  for (auto& check : component->HealthChecks(config.operations)) {
    if (Status s = sinks.health.Register(std::move(check)); !s.ok()) return s;
  }
  const std::weak_ptr<Component> weak = component;
  for (auto& name : component->StatusSections()) {
    sinks.status_sections.push_back({name, [weak, name] {
                                       auto self = weak.lock();
                                       return self ? self->StatusJson(name) : std::string("{}");
                                     }});
  }
  for (auto& step : component->ShutdownSteps(config)) {
    (void)sinks.shutdown.AddHandler(std::move(step.name), step.priority, step.budget,
                                    [weak, run = std::move(step.run)] {
                                      auto self = weak.lock();
                                      return self ? run() : Status::Ok();
                                    });
  }
  return Status::Ok();
}

}  // namespace bzzz::ops
