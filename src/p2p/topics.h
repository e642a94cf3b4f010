// Topic names (SPEC §3.3) and the classes that set their retention and
// label their metrics.
#pragma once

#include <string>
#include <string_view>

namespace bzzz::p2p {

inline constexpr std::string_view kCoordinationTopic = "bzzz/coordination/v1";
inline constexpr std::string_view kMetaDiscussionTopic = "hmmm/meta-discussion/v1";
inline constexpr std::string_view kIssueTopicPrefix = "bzzz/meta/issue/";
inline constexpr std::string_view kElectionTopic = "bzzz/election/v1";
inline constexpr std::string_view kSlurpTopic = "bzzz/slurp/v1";
inline constexpr std::string_view kInternalTopicPrefix = "bzzz/internal/";
inline constexpr std::string_view kProbeTopic = "bzzz/internal/probe/v1";
inline constexpr std::string_view kPresenceTopic = "bzzz/internal/presence/v1";  // presence changes

// The per-task room of an issue: "bzzz/meta/issue/<id>".
std::string IssueTopic(std::string_view issue_id);

enum class TopicClass { kCoordination, kMetaDiscussion, kIssue, kElection, kSlurp, kInternal, kDirect, kPresence, kOther };

TopicClass ClassOf(std::string_view topic);
// The metric label: "coordination", "meta_discussion", "issue", "election",
// "slurp", "internal", "direct", "presence", "other".
std::string_view ClassName(TopicClass c);

// "" when the name is acceptable, else why not: 1..256 bytes of
// [A-Za-z0-9/_.:-], no empty path segment, an issue room id not empty.
std::string ValidateTopic(std::string_view topic);

}  // namespace bzzz::p2p
