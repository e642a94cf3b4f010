// Private to the P2P node: how received messages reach their subscribers.
// Each subscriber (Sink) has a bounded queue; a small pool of dispatcher
// threads serves the sinks that have messages, at most 256 at a time per
// turn so that one busy topic cannot starve the others, and a handler runs
// on one thread at a time per sink (its messages stay in order). A full
// queue drops the message and says so (the caller counts the drop).
// DedupWindow remembers the recent frame sequence numbers of each sender, so
// that a frame that arrives twice (DHT and member link) is delivered once.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "p2p/p2p.h"
#include "p2p/topics.h"

namespace bzzz::p2p::internal {

struct Sink {
  std::string name;
  TopicClass topic_class = TopicClass::kOther;
  SubscribeOptions options;
  std::int64_t since_us = 0;
  std::mutex mu;
  MessageHandler handler;  // guarded by mu
  std::deque<Message> queue;
  std::condition_variable room;  // signalled when the dispatcher takes messages
  bool scheduled = false;
  bool closed = false;
};

class Dispatcher {
 public:
  Dispatcher(std::size_t threads, std::size_t capacity);
  ~Dispatcher() { Stop(); }
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // False when the sink's queue is full (the message is dropped); true
  // when queued, or when the sink is closed (the message is discarded).
  bool Push(const std::shared_ptr<Sink>& sink, Message message);
  // The same, but a full queue is waited on until `deadline` (the link
  // reader's back-pressure: while it waits it reads nothing, and TCP slows
  // the sender).
  bool Push(const std::shared_ptr<Sink>& sink, Message message, std::chrono::steady_clock::time_point deadline);
  // Every message of a frame for one sink, under one lock and with at most
  // one wake-up (one per message made the dispatcher ping-pong with the
  // reader). Waits for room as Push; returns how many were dropped.
  std::size_t PushBatch(const std::shared_ptr<Sink>& sink, std::vector<Message> messages,
                        std::chrono::steady_clock::time_point deadline);
  // Joins the threads; messages still queued are not delivered.
  void Stop();

 private:
  void Work();

  const std::size_t capacity_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Sink>> ready_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

class DedupWindow {
 public:
  explicit DedupWindow(std::size_t per_sender) : per_sender_(per_sender) {}

  // True the first time (sender, seq) is seen among the sender's last
  // `per_sender` sequence numbers.
  bool FirstTime(const PublicKey& sender, std::uint64_t seq);
  // Whether (sender, seq) is remembered, without remembering it.
  bool Seen(const PublicKey& sender, std::uint64_t seq);

 private:
  static constexpr std::size_t kMaxSenders = 4096;
  struct Window {
    std::unordered_set<std::uint64_t> seen;
    std::deque<std::uint64_t> order;
  };
  const std::size_t per_sender_;
  std::mutex mu_;
  std::unordered_map<std::string, Window> senders_;  // bounded: an arbitrary sender is forgotten past kMaxSenders
};

}  // namespace bzzz::p2p::internal
