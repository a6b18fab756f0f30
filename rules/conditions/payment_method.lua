-- payment_method: purchase.payment_method, as Hotmart names it (spec 6.2).
-- An event without a payment method does not pass.
return {
  id = "payment_method",
  label = "Payment method",
  description = "Only purchases paid with one of the chosen methods.",
  needs = { "payment" },
  params = {
    { name = "in", type = "list", required = true, case = "upper", label = "Payment methods",
      values = { "BILLET", "CASH_PAYMENT", "CREDIT_CARD", "DIRECT_BANK_TRANSFER", "DIRECT_DEBIT",
                 "FINANCED_BILLET", "FINANCED_INSTALLMENT", "GOOGLE_PAY", "HOTCARD", "HYBRID",
                 "MANUAL_TRANSFER", "PAYPAL", "PAYPAL_INTERNACIONAL", "PICPAY", "PIX", "SAMSUNG_PAY",
                 "WALLET" } },
  },
  test = function(ev, p)
    local method = lb.get(ev, "purchase.payment_method")
    return method ~= nil and lb.contains(p["in"], method)
  end,
}
