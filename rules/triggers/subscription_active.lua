-- subscription_active: subscription status "Active". Fires on every event
-- reporting ACTIVE (each approved renewal, plan switch or billing-day change)
-- since the webhooks carry the status, not the transition.
--
-- Matches any event that reports the subscription's status (purchase events
-- of a subscription product, SWITCH_PLAN, UPDATE_SUBSCRIPTION_CHARGE_DATE,
-- subscription.status_changed from the API). Hotmart 2.0 statuses arrive
-- normalized (docs/events.md 4.2); 1.0 and API statuses arrive only
-- lower-cased, so the spellings Hotmart's documents use are accepted too.
local STATUSES = { active = true }

return {
  id = "subscription_active",
  label = "Active",
  group = "Subscription status",
  description = "The subscription is active: its first charge was approved or a renewal was paid.",
  events = {
    "purchase.approved", "purchase.complete", "purchase.canceled", "purchase.billet_printed",
    "purchase.delayed", "purchase.refunded", "purchase.chargeback", "purchase.protest",
    "purchase.expired", "purchase.started", "subscription.canceled", "subscription.plan_switched",
    "subscription.charge_date_updated", "subscription.status_changed",
  },
  carries = { "subscription", "purchase", "payment", "installments", "currency", "offer", "country", "language", "billet", "pix", "recurrence" },
  match = function(ev, p)
    local status = lb.get(ev, "subscription.status")
    if type(status) == "string" then
      return STATUSES[string.lower(status)] == true
    end
    return false
  end,
}
