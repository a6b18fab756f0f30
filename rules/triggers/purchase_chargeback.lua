-- purchase_chargeback: Purchase in chargeback. Hotmart PURCHASE_CHARGEBACK, postback 1.0 status chargeback.
return {
  id = "purchase_chargeback",
  label = "Purchase in chargeback",
  group = "Purchase status",
  description = "The buyer disputed the charge with the card issuer and the amount was taken back (Hotmart PURCHASE_CHARGEBACK).",
  events = { "purchase.chargeback" },
  carries = { "purchase", "payment", "installments", "currency", "offer", "country", "language", "billet", "pix", "subscription", "recurrence" },
  match = function(ev, p)
    return true -- the event type is the whole test; the host skips other types
  end,
}
