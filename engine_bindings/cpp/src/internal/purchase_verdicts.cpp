#include "purchase_verdicts.hpp"

#include <algorithm>

#include "wire.hpp"

namespace engine_bridge::detail {

PurchaseTicket PurchaseVerdicts::Await(std::string id, std::string store, PurchaseCallback callback) {
  std::lock_guard<std::mutex> lk(mu_);
  PurchaseTicket ticket{std::move(id), std::move(store), next_number_++};
  awaiting_[ticket.id].push_back(Waiter{ticket.number, std::move(callback)});
  return ticket;
}

PurchaseCallback PurchaseVerdicts::Take(const PurchaseTicket& ticket) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = awaiting_.find(ticket.id);
  if (it == awaiting_.end()) return nullptr;
  auto& waiters = it->second;
  auto w = std::find_if(waiters.begin(), waiters.end(), [&](const Waiter& x) { return x.number == ticket.number; });
  if (w == waiters.end()) return nullptr;  // a verdict on the topic answered it already
  PurchaseCallback callback = std::move(w->callback);
  waiters.erase(w);
  if (waiters.empty()) awaiting_.erase(it);
  return callback;
}

void PurchaseVerdicts::Forget(const PurchaseTicket& ticket) { Take(ticket); }

void PurchaseVerdicts::OnReply(const PurchaseTicket& ticket, const Value& reply) {
  if (StrField(reply, "type") == "error") {
    // A refusal answers this call only: another call for the same id may still be heard.
    PurchaseCallback callback = Take(ticket);
    if (!callback) return;
    PurchaseResult r;
    r.id = ticket.id;
    r.store = ticket.store;
    r.error_code = std::string(StrField(reply, "code"));
    r.message = std::string(StrField(reply, "message"));
    callbacks_.Post([callback = std::move(callback), r = std::move(r)] { callback(r); });
    return;
  }
  if (StrField(reply, "state") != "verified") return;  // pending: the verdict will come on the topic
  if (std::optional<PurchaseResult> verdict = ReadVerdict(ticket.id, reply, ticket.store)) Settle(std::move(*verdict), false);
}

void PurchaseVerdicts::OnTopic(const Value& publication) {
  for (const auto& [id, entry] : ReadPublication(publication).values) {
    if (std::optional<PurchaseResult> verdict = ReadVerdict(id, entry, {})) Settle(std::move(*verdict), true);
  }
}

void PurchaseVerdicts::Settle(PurchaseResult verdict, bool from_topic) {
  std::vector<Waiter> waiters;
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = awaiting_.find(verdict.id);
    if (it != awaiting_.end()) {
      waiters = std::move(it->second);
      awaiting_.erase(it);
      reported_.insert(verdict.id);
      // Seen on the topic before this call was made and not yet handed to the handler: the call has it.
      unclaimed_.erase(std::remove_if(unclaimed_.begin(), unclaimed_.end(),
                                      [&](const PurchaseResult& r) { return r.id == verdict.id; }),
                       unclaimed_.end());
    } else if (from_topic && reported_.insert(verdict.id).second) {
      unclaimed_.push_back(verdict);
    } else {
      return;  // reported already (the topic repeats), or a reply to a call the topic answered first
    }
  }
  if (waiters.empty()) {
    callbacks_.Post([this] { DeliverUnclaimed(); });
    return;
  }
  for (Waiter& w : waiters) {
    callbacks_.Post([callback = std::move(w.callback), verdict] { callback(verdict); });
  }
}

void PurchaseVerdicts::SetHandler(PurchaseCallback handler) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    handler_ = handler ? std::make_shared<PurchaseCallback>(std::move(handler)) : nullptr;
  }
  callbacks_.Post([this] { DeliverUnclaimed(); });  // what came before the handler
}

void PurchaseVerdicts::DeliverUnclaimed() {
  std::shared_ptr<PurchaseCallback> handler;
  std::vector<PurchaseResult> verdicts;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!handler_ || unclaimed_.empty()) return;
    handler = handler_;
    verdicts.swap(unclaimed_);
  }
  for (const PurchaseResult& r : verdicts) (*handler)(r);
}

}  // namespace engine_bridge::detail
