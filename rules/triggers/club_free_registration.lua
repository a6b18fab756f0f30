-- club_free_registration: Hotmart sends no webhook for it. The Club poller
-- (or POST /v1/events) emits club.registered for a student who joined the
-- members area for free (Club API role FREE_STUDENT / type FREE).
-- CLUB_FIRST_ACCESS is a different moment (first login) and is not matched.
return {
  id = "club_free_registration",
  label = "Free registration",
  group = "Hotmart Club",
  description = "The lead registered for free in the product's members area (Hotmart Club).",
  events = { "club.registered" },
  carries = { "club", "country", "language" },
  match = function(ev, p)
    return true
  end,
}
