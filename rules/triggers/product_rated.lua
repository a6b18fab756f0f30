-- product_rated: no public Hotmart webhook; POST /v1/events sends
-- product.rated with rating.score. min_score keeps ratings at or above it
-- (Hotmart rates with 1-5 stars; the range allows a 0-10 scale).
return {
  id = "product_rated",
  label = "The client rated the product",
  group = "Product rate",
  description = "The client rated the product. Optionally only ratings at or above a minimum score.",
  events = { "product.rated" },
  carries = { "rating", "country", "language" },
  params = {
    { name = "min_score", type = "number", min = 0, max = 10, label = "Minimum score",
      description = "Fire only for ratings at or above this score." },
  },
  match = function(ev, p)
    if p.min_score == nil then
      return true
    end
    local score = lb.get(ev, "rating.score")
    return type(score) == "number" and score >= p.min_score
  end,
}
