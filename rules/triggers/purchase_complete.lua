-- purchase_complete: Purchase complete. Hotmart PURCHASE_COMPLETE, postback 1.0 status completed.
return {
  id = "purchase_complete",
  label = "Purchase complete",
  group = "Purchase status",
  description = "The warranty (refund) period of an approved purchase is over (Hotmart PURCHASE_COMPLETE). Not a ListBoss trigger in the reference product; offered as an extra.",
  events = { "purchase.complete" },
  carries = { "purchase", "payment", "installments", "currency", "offer", "country", "language", "billet", "pix", "subscription", "recurrence" },
  match = function(ev, p)
    return true -- the event type is the whole test; the host skips other types
  end,
}
