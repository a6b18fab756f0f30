-- buyer_language: no Hotmart payload carries a language. An explicit
-- lead.language (the events API) wins: its primary subtag, lower-cased
-- ("pt-BR", "pt_BR" -> "pt"). Otherwise the language is derived from
-- lead.country with the table below: the majority or official language of
-- the country. Countries with no clear majority for our purpose are left
-- out (the condition then does not pass), e.g. India, Singapore, Philippines.
local BY_COUNTRY = {}
local function map(lang, countries)
  for _, c in ipairs(countries) do BY_COUNTRY[c] = lang end
end
map("pt", { "BR", "PT", "AO", "MZ", "CV", "GW", "ST", "TL" })
map("es", { "ES", "MX", "AR", "CO", "CL", "PE", "VE", "EC", "GT", "CU", "BO", "DO", "HN", "PY",
            "SV", "NI", "CR", "PA", "UY", "PR", "GQ", "AD" })
map("en", { "US", "GB", "CA", "AU", "NZ", "IE", "ZA", "JM", "TT", "BS", "BB", "BZ", "GY", "AG",
            "DM", "GD", "KN", "LC", "VC", "NG", "GH", "KE", "MT" })
map("fr", { "FR", "LU", "MC", "HT", "SN", "CI", "CM", "ML", "BF", "NE", "TG", "BJ", "GA", "CG",
            "CD", "GN", "MG" })
map("de", { "DE", "AT", "CH", "LI" })
map("it", { "IT", "SM", "VA" })
map("nl", { "NL", "BE", "SR" })
map("pl", { "PL" }) map("sv", { "SE" }) map("da", { "DK" }) map("no", { "NO" }) map("fi", { "FI" })
map("el", { "GR", "CY" }) map("cs", { "CZ" }) map("ro", { "RO", "MD" }) map("hu", { "HU" })
map("ru", { "RU", "BY" }) map("tr", { "TR" }) map("ja", { "JP" }) map("zh", { "CN", "TW", "HK", "MO" })
map("ko", { "KR" }) map("he", { "IL" }) map("ar", { "SA", "AE", "EG", "QA", "KW", "BH", "OM", "JO" })

local function language_of(ev)
  local explicit = lb.get(ev, "lead.language")
  if type(explicit) == "string" then
    local primary = string.match(explicit, "^(%a%a%a?)")
    if primary then return string.lower(primary) end
  end
  local country = lb.get(ev, "lead.country")
  return type(country) == "string" and BY_COUNTRY[string.upper(country)] or nil
end

return {
  id = "buyer_language",
  label = "Buyer's language",
  description = "Only buyers who speak one of the chosen languages. Hotmart does not send a language: it is taken from the buyer's country (Brazil and Portugal: Portuguese; Spain and Spanish America: Spanish; and so on), unless the event states one.",
  needs = { "language" },
  params = {
    { name = "in", type = "list", required = true, case = "lower", label = "Languages",
      values = { "pt", "es", "en", "fr", "de", "it", "nl", "pl", "sv", "da", "no", "fi", "el", "cs",
                 "ro", "hu", "ru", "tr", "ja", "zh", "ko", "he", "ar" } },
  },
  test = function(ev, p)
    local lang = language_of(ev)
    return lang ~= nil and lb.contains(p["in"], lang)
  end,
}
