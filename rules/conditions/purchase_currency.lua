-- purchase_currency: purchase.currency (ISO 4217, upper-case in the event).
return {
  id = "purchase_currency",
  label = "Purchase currency",
  description = "Only purchases in one of the chosen currencies (ISO codes such as BRL, USD, EUR).",
  needs = { "currency" },
  params = {
    { name = "in", type = "list", required = true, case = "upper", label = "Currencies" },
  },
  test = function(ev, p)
    local currency = lb.get(ev, "purchase.currency")
    return currency ~= nil and lb.contains(p["in"], string.upper(currency))
  end,
}
