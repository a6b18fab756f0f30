-- club_inactive_30: no webhook exists. The Club scheduler synthesizes events of
-- type club.inactive with club.inactive_days = whole days since the last
-- login (club.last_access_at), once per lead and threshold crossed
-- (docs/rules.md, "Inactivity contract"). This trigger fires from 30 days on.
return {
  id = "club_inactive_30",
  label = "Thirty days without logging in",
  group = "Hotmart Club",
  description = "The student has not logged in to the members area for 30 days.",
  events = { "club.inactive" },
  carries = { "club", "country", "language" },
  match = function(ev, p)
    local days = lb.get(ev, "club.inactive_days")
    return type(days) == "number" and days >= 30
  end,
}
