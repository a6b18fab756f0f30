-- purchase_protested: Purchase protested. Hotmart PURCHASE_PROTEST, postback 1.0 status dispute.
return {
  id = "purchase_protested",
  label = "Purchase protested",
  group = "Purchase status",
  description = "The buyer asked for a refund or opened a dispute; the purchase status is DISPUTE (Hotmart PURCHASE_PROTEST).",
  events = { "purchase.protest" },
  carries = { "purchase", "payment", "installments", "currency", "offer", "country", "language", "billet", "pix", "subscription", "recurrence" },
  match = function(ev, p)
    return true -- the event type is the whole test; the host skips other types
  end,
}
