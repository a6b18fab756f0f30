-- purchase_refunded: Purchase refunded. Hotmart PURCHASE_REFUNDED, postback 1.0 status refunded.
return {
  id = "purchase_refunded",
  label = "Purchase refunded",
  group = "Purchase status",
  description = "The purchase was refunded to the buyer (Hotmart PURCHASE_REFUNDED).",
  events = { "purchase.refunded" },
  carries = { "purchase", "payment", "installments", "currency", "offer", "country", "language", "billet", "pix", "subscription", "recurrence" },
  match = function(ev, p)
    return true -- the event type is the whole test; the host skips other types
  end,
}
