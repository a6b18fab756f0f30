-- bank_slip_issued: Hotmart PURCHASE_BILLET_PRINTED. Hotmart sends the same
-- event when a Pix code is generated (payment method PIX). A Pix code is not
-- a bank slip, so by default it does not count; count_pix = true makes it
-- count. An event that names no payment method counts as a slip unless it
-- holds a Pix code (the 1.0 postback has no Pix fields at all).
local function is_pix(ev)
  local method = lb.get(ev, "purchase.payment_method")
  if method ~= nil then
    return method == "PIX"
  end
  return lb.get(ev, "purchase.pix_code") ~= nil
end

return {
  id = "bank_slip_issued",
  label = "Bank slip issued",
  group = "Purchase status",
  description = "A bank slip (boleto) was generated for the purchase and is waiting for payment. Hotmart reports Pix codes with the same event: they count only if you tick 'Count Pix codes'.",
  events = { "purchase.billet_printed" },
  carries = { "purchase", "payment", "installments", "currency", "offer", "country", "language", "billet", "pix", "subscription", "recurrence" },
  params = {
    { name = "count_pix", type = "boolean", default = false, label = "Count Pix codes",
      description = "Also fire when the event is a Pix code (Hotmart sends Pix codes as bank slips)." },
  },
  match = function(ev, p)
    if is_pix(ev) then
      return p.count_pix == true
    end
    return true
  end,
}
