-- subscription_overdue: subscription status "Overdue". Hotmart spells it
-- OVERDUE, DELAYED or PAST_DUE. A PURCHASE_DELAYED of a subscription product
-- that reports no status counts as overdue (spec 4: "PURCHASE_DELAYED and/or
-- status").
--
-- Matches any event that reports the subscription's status (purchase events
-- of a subscription product, SWITCH_PLAN, UPDATE_SUBSCRIPTION_CHARGE_DATE,
-- subscription.status_changed from the API). Hotmart 2.0 statuses arrive
-- normalized (docs/events.md 4.2); 1.0 and API statuses arrive only
-- lower-cased, so the spellings Hotmart's documents use are accepted too.
local STATUSES = { overdue = true, delayed = true, past_due = true }

return {
  id = "subscription_overdue",
  label = "Overdue",
  group = "Subscription status",
  description = "A subscription charge failed and the subscription is overdue.",
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
    if ev.type == "purchase.delayed" and ev.subscription ~= nil then
      return true -- a failed renewal with the status missing
    end
    return false
  end,
}
