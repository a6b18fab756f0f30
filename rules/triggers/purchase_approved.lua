-- purchase_approved: Hotmart PURCHASE_APPROVED (1.0: approved). Fires for
-- every approved charge, subscription renewals included (purchase.recurrence
-- > 1). first_purchase_only keeps the first charge only; an event without a
-- recurrence number is a one-time purchase, hence a first purchase.
return {
  id = "purchase_approved",
  label = "Purchase approved",
  group = "Purchase status",
  description = "The payment was approved. Subscription renewals are approved purchases too; tick 'First purchase only' to ignore renewals.",
  events = { "purchase.approved" },
  carries = { "purchase", "payment", "installments", "currency", "offer", "country", "language", "billet", "pix", "subscription", "recurrence" },
  params = {
    { name = "first_purchase_only", type = "boolean", default = false, label = "First purchase only",
      description = "Ignore subscription renewals (charges after the first)." },
  },
  match = function(ev, p)
    if not p.first_purchase_only then
      return true
    end
    local n = lb.get(ev, "purchase.recurrence")
    return n == nil or n <= 1
  end,
}
