-- offer: purchase.offer, the offer code (the cart abandonment puts its
-- offer there too). Codes are compared exactly: Hotmart's are case-sensitive.
return {
  id = "offer",
  label = "Offer",
  description = "Only purchases (or abandoned carts) of one of the chosen offer codes.",
  needs = { "offer" },
  params = {
    { name = "in", type = "list", required = true, label = "Offer codes" },
  },
  test = function(ev, p)
    local code = lb.get(ev, "purchase.offer")
    return code ~= nil and lb.contains(p["in"], code)
  end,
}
