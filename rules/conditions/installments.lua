-- installments: purchase.installments (Hotmart sends it for BRL, MXN and COP
-- purchases). An event without it does not pass: absent means unknown.
local OPS = {
  eq = function(n, p) return n == p.value end,
  lt = function(n, p) return n < p.value end,
  gt = function(n, p) return n > p.value end,
  between = function(n, p) return n >= p.value and n <= p.value2 end, -- inclusive
}

return {
  id = "installments",
  label = "Number of installments",
  description = "Only purchases paid in a number of installments equal to, less than, greater than or between (inclusive) the chosen values.",
  needs = { "installments" },
  params = {
    { name = "op", type = "enum", required = true, values = { "eq", "lt", "gt", "between" }, case = "lower",
      label = "Comparison" },
    { name = "value", type = "integer", required = true, min = 1, max = 99, label = "Installments" },
    { name = "value2", type = "integer", min = 1, max = 99, label = "Up to (for between)" },
  },
  check = function(p)
    if p.op == "between" then
      if p.value2 == nil then
        return "'between' needs value2"
      elseif p.value2 < p.value then
        return "value2 must not be less than value"
      end
    elseif p.value2 ~= nil then
      return "value2 only applies to 'between'"
    end
    return nil
  end,
  test = function(ev, p)
    local n = lb.get(ev, "purchase.installments")
    return math.type(n) == "integer" and OPS[p.op](n, p)
  end,
}
