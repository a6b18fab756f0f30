-- club_progress: club.progress events (Club poller or POST /v1/events) carry
-- club.progress, the course completion in percent. Fires when it is at or
-- above the chosen percentage. Firing once per lead and threshold is the
-- scheduler's job (design section 3), not this rule's.
return {
  id = "club_progress",
  label = "Progress on course completion",
  group = "Hotmart Club",
  description = "The student reached the chosen percentage of the course.",
  events = { "club.progress" },
  carries = { "club", "progress", "country", "language" },
  params = {
    { name = "percent", type = "number", min = 1, max = 100, required = true, label = "Completion (%)",
      description = "Fire when the student has completed at least this percentage of the course." },
  },
  match = function(ev, p)
    local progress = lb.get(ev, "club.progress")
    return type(progress) == "number" and progress >= p.percent
  end,
}
