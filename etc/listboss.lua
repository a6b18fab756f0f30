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

-- One entry per Hotmart account (producer) this daemon serves.
--   id         short name, a-z 0-9 _ -, unique; it tags every stored event
--   hottok     the token Hotmart sends with each webhook (Hotmart:
--              Tools > Webhook > your configuration); must be unique
--   api_token  bearer token for POST /v1/events and the admin API; must be
--              unique and differ from every hottok
-- Secrets are references: "env:NAME" reads an environment variable,
-- "file:PATH" reads a file (one trailing newline is removed). A plain string
-- is taken literally: do not commit real tokens to this file.
accounts = {
  {
    id = "demo",
    hottok = "env:LISTBOSS_DEMO_HOTTOK",
    api_token = "env:LISTBOSS_DEMO_TOKEN",
  },
}
