-- order_started: "Order started (PayPal)". Hotmart 2.0 has no such event;
-- the 1.0 postback sent status `started` (PayPal orders waiting for PayPal),
-- and POST /v1/events can send type purchase.started. paypal_only = true
-- also requires the payment method to be PayPal (PAYPAL or
-- PAYPAL_INTERNACIONAL); an event without a method then does not fire.
local PAYPAL = { PAYPAL = true, PAYPAL_INTERNACIONAL = true }

return {
  id = "order_started",
  label = "Order started (PayPal)",
  group = "Purchase status",
  description = "An order was started and is waiting for the payment to be confirmed (PayPal). Sent by the legacy postback 1.0 (status 'started') or through the events API.",
  events = { "purchase.started" },
  carries = { "purchase", "payment", "installments", "currency", "offer", "country", "language", "subscription", "recurrence" },
  params = {
    { name = "paypal_only", type = "boolean", default = false, label = "PayPal only",
      description = "Fire only when the payment method is PayPal." },
  },
  match = function(ev, p)
    if not p.paypal_only then
      return true
    end
    return PAYPAL[lb.get(ev, "purchase.payment_method") or ""] == true
  end,
}
