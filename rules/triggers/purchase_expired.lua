-- purchase_expired: Purchase expired. Hotmart PURCHASE_EXPIRED, postback 1.0 status expired.
return {
  id = "purchase_expired",
  label = "Purchase expired",
  group = "Purchase status",
  description = "The bank slip or Pix code was not paid before it expired (Hotmart PURCHASE_EXPIRED).",
  events = { "purchase.expired" },
  carries = { "purchase", "payment", "installments", "currency", "offer", "country", "language", "billet", "pix", "subscription", "recurrence" },
  match = function(ev, p)
    return true -- the event type is the whole test; the host skips other types
  end,
}
