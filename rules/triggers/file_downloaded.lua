-- file_downloaded: no Hotmart webhook exists; the events API sends type
-- file.downloaded with file.name. The optional file param restricts the
-- trigger to one file name (exact match).
return {
  id = "file_downloaded",
  label = "Downloaded file",
  group = "Form of access",
  description = "The lead downloaded a file of the product. Optionally restrict it to one file name.",
  events = { "file.downloaded" },
  carries = { "file", "country", "language" },
  params = {
    { name = "file", type = "string", label = "File name",
      description = "Only this file (exact name); empty for any file." },
  },
  match = function(ev, p)
    return p.file == nil or lb.get(ev, "file.name") == p.file
  end,
}
