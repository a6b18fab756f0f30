-- club_inactive_15: no webhook exists. The Club scheduler synthesizes events of
-- type club.inactive with club.inactive_days = whole days since the last
-- login (club.last_access_at), once per lead and threshold crossed
-- (docs/rules.md, "Inactivity contract"). This trigger fires from 15 up to 29 days, so a lead first seen at 30+ days gets only the 30-day trigger and no lead gets the 15-day action twice.
return {
  id = "club_inactive_15",
  label = "Fifteen days without logging in",
  group = "Hotmart Club",
  description = "The student has not logged in to the members area for 15 days.",
  events = { "club.inactive" },
  carries = { "club", "country", "language" },
  match = function(ev, p)
    local days = lb.get(ev, "club.inactive_days")
    return type(days) == "number" and days >= 15 and days < 30
  end,
}
