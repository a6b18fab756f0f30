-- subscription_canceled_admin: subscription status "Canceled by
-- administrator". Only events that say who canceled fire it:
-- SUBSCRIPTION_CANCELLATION says nobody.
--
-- Matches any event that reports the subscription's status (purchase events
-- of a subscription product, SWITCH_PLAN, UPDATE_SUBSCRIPTION_CHARGE_DATE,
-- subscription.status_changed from the API). Hotmart 2.0 statuses arrive
-- normalized (docs/events.md 4.2); 1.0 and API statuses arrive only
-- lower-cased, so the spellings Hotmart's documents use are accepted too.
local STATUSES = { canceled_by_admin = true, cancelled_by_admin = true }

return {
  id = "subscription_canceled_admin",
  label = "Canceled by administrator",
  group = "Subscription status",
  description = "The subscription was canceled by a Hotmart administrator.",
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
