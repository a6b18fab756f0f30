/* event.c: lifecycle of the normalized event. */
#include "event.h"

#include <string.h>

void lb_event_set_account(lb_event *ev, const char *account_id)
{
    json_object_object_add(ev->doc, "account", json_object_new_string(account_id));
}

void lb_event_clear(lb_event *ev)
{
    if (ev->doc)
        json_object_put(ev->doc);
    memset(ev, 0, sizeof *ev);
}
