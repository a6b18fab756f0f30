-- listboss.lua: configuration for listbossd.
--
-- This file is Lua 5.4, evaluated in a sandbox: you may use locals, string
-- functions and arithmetic, but not io, os or require. Every top-level
-- assignment is a setting; a misspelt name is an error, not a silent default.
-- Check it before (re)loading:   listbossd -t -c /etc/listboss/listboss.lua
-- Reference: docs/configuration.md.

-- Address and port of the HTTP listener (webhooks, /v1/events, admin API).
-- Keep it on loopback behind a TLS reverse proxy. Changing it needs a restart.
listen = "127.0.0.1:8080"

-- SQLite database file. Changing it needs a restart.
database = "var/listboss.db"

-- Largest request body accepted, in bytes: a number, or "256k" / "1m".
max_body = "256k"

-- "debug", "info", "warn" or "error".
log_level = "info"

-- Hotmart's "send test" button delivers fake purchases. true: store them
-- as ignored; false: process them like real ones (useful while wiring up).
ignore_test_events = false

-- "full" survives power loss without losing an acknowledged event;
-- "normal" is faster and can lose the last few on power loss.
synchronous = "full"

-- Where the provider plugins (*.so) and the rules (triggers/ and
-- conditions/) are. The defaults are the folders `make install` fills; set
-- these only for a non-standard layout.
-- plugin_dir = "/usr/local/lib/listboss/plugins"
-- rules_dir = "/usr/local/share/listboss/rules"

-- Your own condition files, for segmentations that say custom = { file = ... }.
-- Absent: none.
-- custom_rules_dir = "/etc/listboss/custom"

-- One entry per Hotmart account (producer) this daemon serves.
--   id         short name, a-z 0-9 _ -, unique; it tags every stored event
--   hottok     the token Hotmart sends with each webhook (Hotmart:
--              Tools > Webhook > your configuration); must be unique
--   api_token  bearer token for POST /v1/events and the admin API; must be
--              unique and differ from every hottok
-- Secrets are references: "env:NAME" reads an environment variable,
-- "file:PATH" reads a file (one trailing newline is removed). A plain string
-- is taken literally: do not commit real tokens to this file.
--
-- integrations: the email-marketing providers this account's events go to.
--   id           a-z 0-9 _ -, unique in the account; segmentations use it
--   provider     the plugin: "mailchimp", "activecampaign", "convertkit",
--                "sandbox" (calls no one: it records every move in the local
--                store, to try segmentations without an account anywhere)
--   settings     what the provider needs (its docs list the keys); secrets
--                such as API keys take the same env:/file: references
--   rate, burst, concurrency   optional overrides of the provider's limits
--
-- segmentations: which events move which contacts where. Each one names a
-- product, a trigger (docs/rules.md lists them), optional conditions, the
-- integration and the actions to run there. docs/configuration.md has the
-- complete reference.
accounts = {
  {
    id = "demo",
    hottok = "env:LISTBOSS_DEMO_HOTTOK",
    api_token = "env:LISTBOSS_DEMO_TOKEN",
    integrations = {
      { id = "local", provider = "sandbox" },
      -- A real provider needs credentials; uncomment with yours:
      -- { id = "mc", provider = "mailchimp",
      --   settings = { api_key = "env:LISTBOSS_MC_KEY" },
      --   rate = 10, concurrency = 4 },
    },
    segmentations = {
      {
        name = "buyers",
        product = 4123456,              -- the Hotmart product id
        trigger = "purchase_approved",
        -- only card and Pix payments (omit conditions to take every buyer)
        conditions = {
          { id = "payment_method", params = { ["in"] = { "CREDIT_CARD", "PIX" } } },
        },
        integration = "local",          -- "mc" once the Mailchimp entry is enabled
        actions = {
          { action = "list_add", params = { list = "buyers" } },
          { action = "tag_add", params = { tag = "customer" } },
        },
      },
    },
  },
}
