// Purchase verdicts (protocol.md 4.9 and 7): the daemon answers a `purchase` request with the verdict, or with
// `pending` when the store's server was slow, and publishes every verdict on purchase/<device_id>. Both are
// matched here to the calls waiting for them; verdicts nobody in this process asked for go to the game-wide
// handler, each purchase id once. Replies and publications come from the I/O thread; every callback is
// posted to run in Poll(). Internal.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "callback_queue.hpp"
#include "engine_bridge/engine_bridge.hpp"

namespace engine_bridge::detail {

/// Which purchase a `purchase` request carries, so that its reply finds the waiting call.
struct PurchaseTicket {
  std::string id;
  std::string store;
  std::uint64_t number = 0;  // tells apart two calls for the same purchase id
};

class PurchaseVerdicts {
 public:
  explicit PurchaseVerdicts(CallbackQueue& callbacks) : callbacks_(callbacks) {}

  /// Registers `callback` to wait for the verdict on purchase `id`, before the request exists: its verdict
  /// may come on the topic before its reply.
  PurchaseTicket Await(std::string id, std::string store, PurchaseCallback callback);
  /// Forgets a ticket whose request could not be queued.
  void Forget(const PurchaseTicket& ticket);
  void SetHandler(PurchaseCallback handler);

  // I/O thread.
  /// An error or a verdict goes to the waiting call; `pending` leaves it waiting for the topic.
  void OnReply(const PurchaseTicket& ticket, const Value& reply);
  /// A `purchase/<device_id>` publication.
  void OnTopic(const Value& publication);

 private:
  struct Waiter {
    std::uint64_t number = 0;
    PurchaseCallback callback;
  };
  /// Hands a verdict to every call waiting for its id, or, the first time the id is seen and no call waits,
  /// to the game-wide handler.
  void Settle(PurchaseResult verdict, bool from_topic);
  /// Runs in Poll(): verdicts for the game-wide handler, if one is set.
  void DeliverUnclaimed();
  /// Takes the waiter of `ticket` out, if it still waits.
  PurchaseCallback Take(const PurchaseTicket& ticket);

  CallbackQueue& callbacks_;
  std::mutex mu_;
  std::unordered_map<std::string, std::vector<Waiter>> awaiting_;  // purchase id -> calls waiting
  std::unordered_set<std::string> reported_;  // ids whose verdict reached a callback or the handler
  std::vector<PurchaseResult> unclaimed_;     // verdicts for the handler, not yet handed over
  std::shared_ptr<PurchaseCallback> handler_;
  std::uint64_t next_number_ = 1;
};

}  // namespace engine_bridge::detail
