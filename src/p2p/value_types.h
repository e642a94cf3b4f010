// The OpenDHT value types of bzzz (private to the p2p library): one per
// pubsub topic class, each with the retention of its class, plus presence,
// the direct-message inbox, records, providers, chunks and join requests.
// Their storage and edit policies (p2p.cc, P2pNode::Impl::RegisterTypes)
// check every value a node is asked to store: a valid frame of the right
// kind from an admitted member, within the size limit.
#pragma once

#include <opendht/value.h>

#include "p2p/topics.h"

namespace bzzz::p2p::internal {

enum TypeId : dht::ValueType::Id {
  kTypeCoordination = 0x6201,
  kTypeMetaDiscussion,
  kTypeIssue,
  kTypeElection,
  kTypeSlurp,
  kTypeInternal,
  kTypePresence,
  kTypeDirect,
  kTypeRecord,
  kTypeProvider,
  kTypeChunk,
  kTypeJoin,
};

inline dht::ValueType::Id TypeOfClass(TopicClass c) {
  switch (c) {
    case TopicClass::kCoordination: return kTypeCoordination;
    case TopicClass::kMetaDiscussion: return kTypeMetaDiscussion;
    case TopicClass::kIssue: return kTypeIssue;
    case TopicClass::kElection: return kTypeElection;
    case TopicClass::kSlurp: return kTypeSlurp;
    default: return kTypeInternal;
  }
}

}  // namespace bzzz::p2p::internal
