#include "election/admin_services.h"

#include <spdlog/spdlog.h>
#include "base/log.h"

namespace bzzz::election {

namespace {
constexpr SubsystemLog kLog{"election"};
}  // namespace

void AdminServices::Register(Service service) {
  std::lock_guard lock(mu_);
  states_.push_back(State{service.name, false, 0, ""});
  services_.push_back(std::move(service));
  // Registered while admin: it joins the running term.
  if (running_) {
    State& st = states_.back();
    Status s = services_.back().start ? services_.back().start(*running_) : Status::Ok();
    st.running = s.ok();
    st.term = *running_;
    st.last_error = s.ok() ? "" : s.ToString();
  }
}

void AdminServices::BecameAdmin(std::uint64_t term) {
  std::lock_guard lock(mu_);
  if (running_ && *running_ == term) return;
  if (term <= last_started_) return;                  // never twice, never an older term
  for (std::size_t i = services_.size(); i-- > 0;) {  // reverse order of start
    if (states_[i].running && services_[i].stop) services_[i].stop(states_[i].term);
    states_[i].running = false;
  }
  running_ = term;
  last_started_ = term;
  for (std::size_t i = 0; i < services_.size(); ++i) {
    Status s = services_[i].start ? services_[i].start(term) : Status::Ok();
    states_[i].running = s.ok();
    states_[i].term = term;
    states_[i].last_error = s.ok() ? "" : s.ToString();
    if (!s.ok())
      kLog.error("admin service {} did not start for term {}: {}", services_[i].name, term, s.ToString());
  }
}

void AdminServices::StoppedBeingAdmin() {
  std::lock_guard lock(mu_);
  if (!running_) return;
  for (std::size_t i = services_.size(); i-- > 0;) {  // reverse order of start
    if (states_[i].running && services_[i].stop) services_[i].stop(states_[i].term);
    states_[i].running = false;
  }
  running_.reset();
}

std::optional<std::uint64_t> AdminServices::RunningTerm() const {
  std::lock_guard lock(mu_);
  return running_;
}

std::vector<AdminServices::State> AdminServices::States() const {
  std::lock_guard lock(mu_);
  return states_;
}

Status TermFence::Admit(std::uint64_t term) {
  std::uint64_t newest = newest_.load();
  while (term > newest) {
    if (newest_.compare_exchange_weak(newest, term)) return Status::Ok();
  }
  if (term == newest) return Status::Ok();
  return FailedPrecondition("write of term " + std::to_string(term) + " refused: term " +
                            std::to_string(newest) + " has a newer admin");
}

}  // namespace bzzz::election
