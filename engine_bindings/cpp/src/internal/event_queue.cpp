#include "event_queue.hpp"

#include <algorithm>

namespace engine_bridge::detail {

void EventQueue::Open(std::size_t capacity) {
  std::lock_guard<std::mutex> lk(mu_);
  capacity_ = capacity;
  cursor_ = front_seq_;
  stats_.connected = false;
  while (stats_.queued > capacity_) DropOne();
}

void EventQueue::Push(std::string bytes) {
  std::lock_guard<std::mutex> lk(mu_);
  if (stats_.queued >= capacity_) DropOne();
  log_.push_back(Entry{std::move(bytes)});
  ++stats_.tracked;
  ++stats_.queued;
}

void EventQueue::DropOne() {
  // An event sent already may be stored (its ack on the way, or lost with the connection) and is kept to be
  // resent, deduplicated by the daemon: the oldest never sent goes first.
  unsent_from_ = std::max(unsent_from_, front_seq_);
  while (unsent_from_ < End() && (At(unsent_from_).sent || At(unsent_from_).done)) ++unsent_from_;
  const bool unsent = unsent_from_ < End();
  Entry& victim = At(unsent ? unsent_from_ : front_seq_);
  if (unsent) {
    ++stats_.dropped;
  } else {
    ++stats_.abandoned;
  }
  if (victim.in_flight) {
    victim.in_flight = false;
    --stats_.in_flight;
  }
  victim.done = true;
  std::string().swap(victim.bytes);
  --stats_.queued;
  PopDone();
}

void EventQueue::PopDone() {
  while (!log_.empty() && log_.front().done) {
    log_.pop_front();
    ++front_seq_;
  }
}

Status EventQueue::PushControl(std::string_view api, std::string type, Body body, OnReply on_reply) {
  std::lock_guard<std::mutex> lk(mu_);
  if (controls_.size() >= kMaxControlsWaiting) {
    return Status(ErrorCode::QueueFull, std::string(api) + ": " + std::to_string(kMaxControlsWaiting) +
                                            " requests already wait for the daemon");
  }
  controls_.push_back(Control{next_control_order_++, End(), std::move(type), std::move(body), std::move(on_reply)});
  return Status();
}

void EventQueue::TakeControls(std::deque<Control>& into) {
  std::lock_guard<std::mutex> lk(mu_);
  for (; !controls_.empty(); controls_.pop_front()) into.push_back(std::move(controls_.front()));
}

std::uint64_t EventQueue::Waiting(std::uint64_t limit_seq) {
  std::lock_guard<std::mutex> lk(mu_);
  cursor_ = std::max(cursor_, front_seq_);
  return std::min(End(), std::max(limit_seq, cursor_)) - cursor_;
}

void EventQueue::Fill(std::uint32_t rid, std::uint64_t limit_seq, std::size_t max_events, std::size_t max_bytes,
                      std::string& buf, std::vector<std::uint64_t>& seqs) {
  constexpr std::size_t kChunk = 64;  // entries copied per lock, so a Track call never waits long
  for (bool more = true; more && seqs.size() < max_events;) {
    std::lock_guard<std::mutex> lk(mu_);
    cursor_ = std::max(cursor_, front_seq_);
    const std::uint64_t end = std::min(End(), limit_seq);
    for (std::size_t scanned = 0; cursor_ < end && scanned < kChunk && seqs.size() < max_events; ++scanned) {
      Entry& e = At(cursor_);
      if (!e.in_flight && !e.done) {
        if (buf.size() + e.bytes.size() > max_bytes) {
          if (!seqs.empty()) {
            more = false;
            break;
          }
          // Alone over the limit: only when the daemon announced a smaller limit than the one the event was
          // checked against. It would be refused forever, so it is rejected here.
          e.done = true;
          --stats_.queued;
          ++stats_.rejected;
          stats_.last_rejection = "an event of " + std::to_string(e.bytes.size()) +
                                  " bytes is over the daemon's max_message_bytes";
          ++cursor_;
          continue;
        }
        buf += e.bytes;
        e.in_flight = true;
        e.rid = rid;
        ++stats_.in_flight;
        seqs.push_back(cursor_);
      }
      ++cursor_;
    }
    if (cursor_ >= end) more = false;
  }
  std::lock_guard<std::mutex> lk(mu_);
  PopDone();
}

void EventQueue::Sent(const std::vector<std::uint64_t>& seqs) {
  std::lock_guard<std::mutex> lk(mu_);
  for (std::uint64_t seq : seqs) {
    if (seq < front_seq_) continue;
    Entry& e = At(seq);
    if (e.done) continue;
    if (e.sent) ++stats_.resent;
    e.sent = true;
  }
}

void EventQueue::Acked(const std::vector<std::uint64_t>& seqs, const Ack* ack, const std::string& error) {
  std::lock_guard<std::mutex> lk(mu_);
  for (std::uint64_t seq : seqs) {
    if (seq < front_seq_) continue;  // dropped while in flight
    Entry& e = At(seq);
    if (e.done) continue;
    e.done = true;
    std::string().swap(e.bytes);
    --stats_.queued;
    ++stats_.acknowledged;
    if (e.in_flight) {
      e.in_flight = false;
      --stats_.in_flight;
    }
  }
  PopDone();
  if (ack != nullptr) {
    stats_.stored += ack->stored;
    stats_.duplicates += ack->duplicates;
    stats_.rejected += ack->rejected;
    stats_.provider_refusals += ack->refusals.size();
    if (ack->rejected > 0) stats_.last_rejection = ack->last_rejection;
  } else {
    // The daemon refused the whole batch; it would refuse it again, so it counts as rejected.
    stats_.rejected += seqs.size();
    stats_.last_rejection = error;
  }
}

void EventQueue::Requeue(std::uint32_t rid, const std::vector<std::uint64_t>& seqs) {
  std::lock_guard<std::mutex> lk(mu_);
  for (std::uint64_t seq : seqs) {
    if (seq < front_seq_) continue;
    Entry& e = At(seq);
    if (e.in_flight && e.rid == rid) {
      e.in_flight = false;
      --stats_.in_flight;
      cursor_ = std::min(cursor_, seq);
    }
  }
}

bool EventQueue::Empty() {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_.queued == 0 && controls_.empty();
}

Stats EventQueue::Snapshot() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

}  // namespace engine_bridge::detail
