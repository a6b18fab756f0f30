/* config_demo.c: the configuration listbossd runs with when started without
 * -c, so `listbossd` alone accepts the Hotmart test fixtures out of the box.
 * It binds to loopback only; an operator deploys with etc/listboss.lua. */
#include "config.h"

const char lb_config_demo[] =
    "-- Built-in demo configuration (listbossd without -c).\n"
    "-- The secrets below are LITERALS, for the demo only: anyone who has read\n"
    "-- this source knows them. A real deployment uses env:NAME or file:PATH\n"
    "-- references; see etc/listboss.lua and docs/configuration.md.\n"
    "listen = \"127.0.0.1:8080\"\n"
    "database = \"var/listboss.db\"\n"
    "\n"
    "accounts = {\n"
    "  {\n"
    "    id = \"demo\",\n"
    "    -- the hottok the Hotmart test fixtures carry\n"
    "    hottok = \"TESTHOTTOK0000000000000000000000000000000\",\n"
    "    api_token = \"demo-api-token-0000\",\n"
    "  },\n"
    "}\n";
