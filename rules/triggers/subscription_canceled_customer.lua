-- subscription_canceled_customer: subscription status "Canceled by customer".
-- SUBSCRIPTION_CANCELLATION carries no status and no author: with
-- cancellation_counts_as_customer (default true) it counts as the customer's,
-- the usual case and the only way this trigger fires on Hotmart 2.0 webhooks.
--
-- Matches any event that reports the subscription's status (purchase events
-- of a subscription product, SWITCH_PLAN, UPDATE_SUBSCRIPTION_CHARGE_DATE,
-- subscription.status_changed from the API). Hotmart 2.0 statuses arrive
-- normalized (docs/events.md 4.2); 1.0 and API statuses arrive only
-- lower-cased, so the spellings Hotmart's documents use are accepted too.
local STATUSES = { canceled_by_customer = true, cancelled_by_customer = true }

return {
  id = "subscription_canceled_customer",
  label = "Canceled by customer",
  group = "Subscription status",
  description = "The subscriber canceled the subscription. Hotmart's cancellation event does not say who canceled; by default it counts as the customer's cancellation (untick 'Count cancellations without an author' to change that).",
  events = {
    "purchase.approved", "purchase.complete", "purchase.canceled", "purchase.billet_printed",
    "purchase.delayed", "purchase.refunded", "purchase.chargeback", "purchase.protest",
    "purchase.expired", "purchase.started", "subscription.canceled", "subscription.plan_switched",
    "subscription.charge_date_updated", "subscription.status_changed",
  },
  carries = { "subscription", "purchase", "payment", "installments", "currency", "offer", "country", "language", "billet", "pix", "recurrence" },
  params = {
    { name = "cancellation_counts_as_customer", type = "boolean", default = true,
      label = "Count cancellations without an author",
      description = "Hotmart's subscription cancellation event does not say who canceled; count it as canceled by the customer." },
  },
  match = function(ev, p)
    local status = lb.get(ev, "subscription.status")
    if type(status) == "string" then
      return STATUSES[string.lower(status)] == true
    end
    if ev.type == "subscription.canceled" then
      return p.cancellation_counts_as_customer == true
    end
    return false
  end,
}
