-- smart_installment_recurrence: smart_installment.status, the status of the
-- recurring charges of a purchase paid with smart installments (sent by
-- POST /v1/events as given; compared without regard to case). No public
-- source lists Hotmart's values, so there is no whitelist.
return {
  id = "smart_installment_recurrence",
  label = "Recurrence status of smart installments",
  description = "Only when the smart-installment recurrence status is one of the chosen ones.",
  needs = { "smart_installment" },
  params = {
    { name = "in", type = "list", required = true, case = "lower", label = "Statuses" },
  },
  test = function(ev, p)
    local status = lb.get(ev, "smart_installment.status")
    return type(status) == "string" and lb.contains(p["in"], string.lower(status))
  end,
}
