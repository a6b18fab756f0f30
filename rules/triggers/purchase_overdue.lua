-- purchase_overdue: Purchase overdue. Hotmart PURCHASE_DELAYED, postback 1.0 status delayed.
return {
  id = "purchase_overdue",
  label = "Purchase overdue",
  group = "Purchase status",
  description = "A payment is overdue: usually a subscription renewal whose charge failed (Hotmart PURCHASE_DELAYED).",
  events = { "purchase.delayed" },
  carries = { "purchase", "payment", "installments", "currency", "offer", "country", "language", "billet", "pix", "subscription", "recurrence" },
  match = function(ev, p)
    return true -- the event type is the whole test; the host skips other types
  end,
}
