-- purchase_canceled: Purchase canceled. Hotmart PURCHASE_CANCELED, postback 1.0 status canceled.
return {
  id = "purchase_canceled",
  label = "Purchase canceled",
  group = "Purchase status",
  description = "The purchase was canceled, for instance because the card was refused (Hotmart PURCHASE_CANCELED).",
  events = { "purchase.canceled" },
  carries = { "purchase", "payment", "installments", "currency", "offer", "country", "language", "billet", "pix", "subscription", "recurrence" },
  match = function(ev, p)
    return true -- the event type is the whole test; the host skips other types
  end,
}
