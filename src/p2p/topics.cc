#include "p2p/topics.h"

#include <cctype>

namespace bzzz::p2p {

std::string IssueTopic(std::string_view issue_id) { return std::string(kIssueTopicPrefix) + std::string(issue_id); }

TopicClass ClassOf(std::string_view topic) {
  if (topic == kCoordinationTopic) return TopicClass::kCoordination;
  if (topic == kMetaDiscussionTopic) return TopicClass::kMetaDiscussion;
  if (topic.starts_with(kIssueTopicPrefix)) return TopicClass::kIssue;
  if (topic == kElectionTopic) return TopicClass::kElection;
  if (topic == kSlurpTopic) return TopicClass::kSlurp;
  if (topic.starts_with(kInternalTopicPrefix)) return TopicClass::kInternal;
  return TopicClass::kOther;
}

std::string_view ClassName(TopicClass c) {
  switch (c) {
    case TopicClass::kCoordination: return "coordination";
    case TopicClass::kMetaDiscussion: return "meta_discussion";
    case TopicClass::kIssue: return "issue";
    case TopicClass::kElection: return "election";
    case TopicClass::kSlurp: return "slurp";
    case TopicClass::kInternal: return "internal";
    case TopicClass::kDirect: return "direct";
    case TopicClass::kPresence: return "presence";
    case TopicClass::kOther: return "other";
  }
  return "other";
}

std::string ValidateTopic(std::string_view topic) {
  if (topic.empty()) return "topic must not be empty";
  if (topic.size() > 256) return "topic longer than 256 bytes";
  for (char c : topic) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '_' || c == '.' || c == ':' ||
                    c == '-';
    if (!ok) return "topic may only contain letters, digits and / _ . : -";
  }
  if (topic.front() == '/' || topic.back() == '/' || topic.find("//") != std::string_view::npos) {
    return "topic has an empty path segment";
  }
  if (topic.starts_with(kIssueTopicPrefix) && topic.size() == kIssueTopicPrefix.size()) {
    return "issue room needs an id: bzzz/meta/issue/<id>";
  }
  return "";
}

}  // namespace bzzz::p2p
