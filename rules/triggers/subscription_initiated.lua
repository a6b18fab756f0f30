-- subscription_initiated: subscription status "Initiated". Hotmart spells it
-- STARTED; it most likely arrives on PURCHASE_BILLET_PRINTED.
--
-- Matches any event that reports the subscription's status (purchase events
-- of a subscription product, SWITCH_PLAN, UPDATE_SUBSCRIPTION_CHARGE_DATE,
-- subscription.status_changed from the API). Hotmart 2.0 statuses arrive
-- normalized (docs/events.md 4.2); 1.0 and API statuses arrive only
-- lower-cased, so the spellings Hotmart's documents use are accepted too.
local STATUSES = { initiated = true, started = true }

return {
  id = "subscription_initiated",
  label = "Initiated",
  group = "Subscription status",
  description = "The subscription was started and its first payment (bank slip or Pix) is waiting to be paid.",
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
