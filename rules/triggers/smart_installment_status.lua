-- smart_installment_status: no public Hotmart webhook; POST /v1/events sends
-- smart_installment.status_changed with smart_installment.status (the new
-- status, as the sender spells it). The optional status param restricts the
-- trigger to one status, compared without regard to case.
return {
  id = "smart_installment_status",
  label = "Status change on smart installments",
  group = "Smart installments",
  description = "The status of a purchase paid with smart installments changed. Optionally only changes to one status.",
  events = { "smart_installment.status_changed" },
  carries = { "smart_installment", "country", "language" },
  params = {
    { name = "status", type = "string", case = "lower", label = "New status",
      description = "Fire only when the new status is this one (e.g. overdue)." },
  },
  match = function(ev, p)
    if p.status == nil then
      return true
    end
    local status = lb.get(ev, "smart_installment.status")
    return type(status) == "string" and string.lower(status) == p.status
  end,
}
