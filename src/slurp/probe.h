// SLURP's metrics (docs/slurp.md, docs/operations.md).
#pragma once

#include <memory>
#include <string_view>

namespace prometheus {
class Registry;
}

namespace bzzz::slurp {

class SlurpProbe {
 public:
  explicit SlurpProbe(prometheus::Registry* registry);  // null: counts nothing
  ~SlurpProbe();

  // source: api, task, hmmm. result: accepted, duplicate, refused (queue
  // full), dropped (the intake was full), processed, retried, dead.
  void Event(std::string_view source, std::string_view result);
  void Queue(double queued, double dead);
  void Processed(double seconds);
  void RecordWritten();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace bzzz::slurp
