// The bounded in-memory queue between the game's threads and the I/O thread (Internal).
//
// Events are msgpack-encoded at Track time and appended with a 64-bit sequence number. An event leaves
// the queue only when an ack covers it, so everything unacknowledged is resent after a reconnect with its
// original id. When the queue is full the oldest event never sent is dropped (Stats::dropped); only when
// every queued event was sent already does the oldest of those go (Stats::abandoned: the daemon may have
// stored it). Requests other than events (sessions, flush, purchases) wait in a second, small queue, each
// placed after the events tracked before it. The lock is held for one Track call, or by the I/O thread
// for short copies, so a game thread never waits on I/O. The counters of Stats live here, under the same lock.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine_bridge/engine_bridge.hpp"
#include "purchase_verdicts.hpp"
#include "wire.hpp"

namespace engine_bridge::detail {

/// What a control request's reply goes to: the caller's callback, or the purchase bookkeeping.
using OnReply = std::variant<ReplyCallback, PurchaseTicket>;

/// A request other than events, sent in its place in the stream.
struct Control {
  std::uint64_t order = 0;      // keeps requeued controls in the order the game made them
  std::uint64_t after_seq = 0;  // events with a smaller seq go first
  std::string type;
  Body body;
  OnReply on_reply;
};

class EventQueue {
 public:
  static constexpr std::size_t kMaxControlsWaiting = 256;

  /// At Connect: the capacity, and every unacknowledged event to be sent again.
  void Open(std::size_t capacity);
  // Game threads.
  void Push(std::string bytes);
  Status PushControl(std::string_view api, std::string type, Body body, OnReply on_reply);

  // I/O thread.
  void TakeControls(std::deque<Control>& into);
  /// How many events wait to be sent before `limit_seq` (controls waiting behind them: their after_seq).
  std::uint64_t Waiting(std::uint64_t limit_seq);
  /// Appends to `buf` the next events not in flight, before `limit_seq`, within `max_events` and (with
  /// what `buf` holds) `max_bytes`, marking them in flight under `rid`; their seqs go to `seqs`.
  void Fill(std::uint32_t rid, std::uint64_t limit_seq, std::size_t max_events, std::size_t max_bytes,
            std::string& buf, std::vector<std::uint64_t>& seqs);
  /// The batch went out (a second sending counts as a resend).
  void Sent(const std::vector<std::uint64_t>& seqs);
  /// An ack (or a refusal of the whole batch, `ack` null, `error` saying why) covers these events.
  void Acked(const std::vector<std::uint64_t>& seqs, const Ack* ack, const std::string& error);
  /// Back to waiting: the batch `rid` will get no reply (a drop, a timeout, a transient error).
  void Requeue(std::uint32_t rid, const std::vector<std::uint64_t>& seqs);
  /// No event and no control request left to send or to be acknowledged.
  bool Empty();

  Stats Snapshot() const;
  /// Changes other Stats fields under the queue's lock.
  template <typename F>
  void Update(F&& f) {
    std::lock_guard<std::mutex> lk(mu_);
    f(stats_);
  }

 private:
  struct Entry {
    std::string bytes;
    std::uint32_t rid = 0;  // the request that carries it while in_flight
    bool in_flight = false;
    bool done = false;      // acknowledged, or dropped: no longer queued
    bool sent = false;      // sent at least once
  };
  Entry& At(std::uint64_t seq) { return log_[static_cast<std::size_t>(seq - front_seq_)]; }
  std::uint64_t End() const { return front_seq_ + log_.size(); }
  /// Full: drops one event to make room (see the file comment).
  void DropOne();
  void PopDone();

  mutable std::mutex mu_;
  std::size_t capacity_ = 1;
  std::deque<Entry> log_;
  std::uint64_t front_seq_ = 0;    // seq of log_.front(), which is never done
  std::uint64_t cursor_ = 0;       // every entry before it is in flight or done
  std::uint64_t unsent_from_ = 0;  // every entry before it was sent or is done
  std::deque<Control> controls_;
  std::uint64_t next_control_order_ = 0;
  Stats stats_;  // queued and in_flight are kept up to date with log_
};

}  // namespace engine_bridge::detail
