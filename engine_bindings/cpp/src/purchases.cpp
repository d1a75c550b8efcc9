// Purchase verdicts (protocol.md 4.9 and 7): the daemon answers a `purchase` request with the verdict, or
// with `pending` when the store's server was slow, and publishes every verdict on purchase/<device_id>.
// Here both sources are matched to the calls waiting for them, and verdicts nobody in this process asked
// for go to the game-wide handler, each purchase id once.
//
// Replies and publications are read on the I/O thread; every callback is posted to run in Poll().
#include <algorithm>

#include "client_impl.hpp"

namespace engine_bridge {

namespace {

const std::string* StrOf(const Value& map, std::string_view key) {
  const Value* v = map.Find(key);
  return v ? v->AsString() : nullptr;
}

// A verdict map (a `verified` reply, or one entry of the topic's `values`); nothing when `is_valid` is not
// a boolean, which a daemon following protocol.md never sends with a verdict.
std::optional<PurchaseResult> ReadVerdict(std::string id, const Value& v, std::string_view store) {
  const Value* is_valid = v.Find("is_valid");
  if (is_valid == nullptr || !is_valid->AsBool()) return std::nullopt;
  PurchaseResult r;
  r.id = std::move(id);
  r.ok = true;
  r.is_valid = *is_valid->AsBool();
  const Value* is_duplicate = v.Find("is_duplicate");
  r.is_duplicate = is_duplicate != nullptr && is_duplicate->AsBool().value_or(false);
  if (const std::string* reason = StrOf(v, "reason")) r.reason = *reason;
  const std::string* named_store = StrOf(v, "store");
  r.store = named_store ? *named_store : std::string(store);
  if (const Value* at = v.Find("verified_at")) r.verified_at = at->AsInt();
  return r;
}

}  // namespace

Status Client::Impl::EnqueuePurchase(std::string_view api, std::string id, std::string_view store, std::string body,
                                     std::uint32_t body_fields, PurchaseCallback callback) {
  PurchaseTicket ticket{std::move(id), std::string(store), 0};
  {
    // Waiting before the request exists: its verdict may come on the topic before its reply.
    std::lock_guard<std::mutex> lk(purchase_mu_);
    ticket.number = next_purchase_number_++;
    awaiting_[ticket.id].push_back(PurchaseWaiter{ticket.number, std::move(callback)});
  }
  const std::string id_copy = ticket.id;
  const std::uint64_t number = ticket.number;
  Status queued = EnqueueControl(api, "purchase", std::move(body), body_fields, std::move(ticket));
  if (!queued) {
    std::lock_guard<std::mutex> lk(purchase_mu_);
    auto it = awaiting_.find(id_copy);
    if (it != awaiting_.end()) {
      auto& waiters = it->second;
      waiters.erase(std::remove_if(waiters.begin(), waiters.end(),
                                   [&](const PurchaseWaiter& w) { return w.number == number; }),
                    waiters.end());
      if (waiters.empty()) awaiting_.erase(it);
    }
  }
  return queued;
}

void Client::Impl::HandlePurchaseReply(const PurchaseTicket& ticket, const Value& reply) {
  const std::string* type = StrOf(reply, "type");
  if (type != nullptr && *type == "error") {
    // A refusal answers this call only: another call for the same id may still be heard.
    PurchaseCallback callback;
    {
      std::lock_guard<std::mutex> lk(purchase_mu_);
      auto it = awaiting_.find(ticket.id);
      if (it == awaiting_.end()) return;
      auto& waiters = it->second;
      auto w = std::find_if(waiters.begin(), waiters.end(),
                            [&](const PurchaseWaiter& pw) { return pw.number == ticket.number; });
      if (w == waiters.end()) return;  // a verdict on the topic answered it already
      callback = std::move(w->callback);
      waiters.erase(w);
      if (waiters.empty()) awaiting_.erase(it);
    }
    PurchaseResult r;
    r.id = ticket.id;
    r.store = ticket.store;
    if (const std::string* code = StrOf(reply, "code")) r.error_code = *code;
    if (const std::string* message = StrOf(reply, "message")) r.message = *message;
    Post([callback = std::move(callback), r = std::move(r)] { callback(r); });
    return;
  }
  const std::string* state = StrOf(reply, "state");
  if (state == nullptr || *state != "verified") return;  // pending: the verdict will come on the topic
  if (std::optional<PurchaseResult> verdict = ReadVerdict(ticket.id, reply, ticket.store)) Settle(std::move(*verdict), false);
}

void Client::Impl::HandlePurchaseTopic(const Value& publication) {
  const Value* values = publication.Find("values");
  if (values == nullptr || values->AsMap() == nullptr) return;
  for (const auto& [id, entry] : *values->AsMap()) {
    if (std::optional<PurchaseResult> verdict = ReadVerdict(id, entry, {})) Settle(std::move(*verdict), true);
  }
}

void Client::Impl::Settle(PurchaseResult verdict, bool from_topic) {
  std::vector<PurchaseWaiter> waiters;
  {
    std::lock_guard<std::mutex> lk(purchase_mu_);
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
    Post([this] { DeliverUnclaimed(); });
    return;
  }
  for (PurchaseWaiter& w : waiters) {
    Post([callback = std::move(w.callback), verdict] { callback(verdict); });
  }
}

void Client::Impl::SetPurchaseHandler(PurchaseCallback handler) {
  {
    std::lock_guard<std::mutex> lk(purchase_mu_);
    purchase_handler_ = handler ? std::make_shared<PurchaseCallback>(std::move(handler)) : nullptr;
  }
  Post([this] { DeliverUnclaimed(); });  // what came before the handler
}

void Client::Impl::DeliverUnclaimed() {
  std::shared_ptr<PurchaseCallback> handler;
  std::vector<PurchaseResult> verdicts;
  {
    std::lock_guard<std::mutex> lk(purchase_mu_);
    if (!purchase_handler_ || unclaimed_.empty()) return;
    handler = purchase_handler_;
    verdicts.swap(unclaimed_);
  }
  for (const PurchaseResult& r : verdicts) (*handler)(r);
}

}  // namespace engine_bridge
