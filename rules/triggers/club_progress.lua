-- club_progress: club.progress events (Club poller or POST /v1/events) carry
-- club.progress, the course completion in percent. Fires once per lead and
-- threshold: when this event reaches the chosen percentage and the highest
-- progress the server had recorded for the lead (club.previous_progress, added
-- by the core before the rules run) had not.
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
    local previous = lb.get(ev, "club.previous_progress")
    return type(progress) == "number" and progress >= p.percent
       and (type(previous) ~= "number" or previous < p.percent)
  end,
}
