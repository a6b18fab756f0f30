-- cart_abandonment: Hotmart PURCHASE_OUT_OF_SHOPPING_CART. The lead typed a
-- name or e-mail on the checkout and did not buy; Hotmart checks every 30
-- minutes. No purchase exists yet: the event carries the offer code and the
-- checkout country only, so payment, installment and currency conditions do
-- not apply.
return {
  id = "cart_abandonment",
  label = "Cart abandonment",
  group = "Purchase status",
  description = "The lead filled in the checkout (name or e-mail) but did not complete the purchase. Hotmart checks for abandoned carts every 30 minutes.",
  events = { "cart.abandoned" },
  carries = { "offer", "country", "language" },
  match = function(ev, p)
    return true
  end,
}
