-- buyer_country: lead.country, ISO 3166 alpha-2 (upper-case in the event;
-- Hotmart's buyer address country, else the checkout country).
return {
  id = "buyer_country",
  label = "Buyer's country",
  description = "Only buyers from one of the chosen countries (two-letter ISO codes such as BR, PT, US).",
  needs = { "country" },
  params = {
    { name = "in", type = "list", required = true, case = "upper", label = "Countries" },
  },
  check = function(p)
    for _, code in ipairs(p["in"]) do
      if not string.match(code, "^%u%u$") then
        return "'" .. code .. "' is not a two-letter country code"
      end
    end
    return nil
  end,
  test = function(ev, p)
    local country = lb.get(ev, "lead.country")
    return country ~= nil and lb.contains(p["in"], string.upper(country))
  end,
}
