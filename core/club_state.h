/* club_state.h: what the server knows of each student's Club activity, per
 * account, product and lead: the last login and the highest progress seen.
 *
 * It feeds the time-based triggers (design.md section 3):
 * - progress thresholds fire once per lead and threshold: a club.progress
 *   event is handed to the rules with club.previous_progress, so a trigger
 *   fires only when a threshold is crossed, never again on a later event;
 * - "15/30 days without login" come from a periodic scan that makes a
 *   club.inactive event (club.inactive_days) once per lead and inactivity
 *   period; the event id names the period (the login it follows), so even a
 *   restart that forgets the scan's memory cannot fire a period twice.
 *
 * It lives on the event loop (no locking) and is rebuilt at start from the
 * store's club_activity table, which the ingest keeps in step. */
#ifndef LB_CLUB_STATE_H
#define LB_CLUB_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

typedef struct lb_club_state lb_club_state;

typedef struct lb_club_activity {
    const char *account, *product_id, *lead_email;
    int64_t last_access_ms; /* 0: never seen */
    double max_progress;    /* -1: never seen */
} lb_club_activity;

lb_club_state *lb_club_state_new(void);
void lb_club_state_free(lb_club_state *s);

/* Restores one stored row (at start). */
int lb_club_state_restore(lb_club_state *s, const lb_club_activity *row);

/* One event's change to a lead's state, before and after, so that it can be
 * taken back when the event is not stored after all (its transaction
 * failed). Without that, the delivery's retry would find its own change
 * made already: it would store no activity, see its own progress as the
 * previous one (so a threshold it crosses would never fire), and a failed
 * inactivity event would never be made again. */
typedef struct lb_club_entry lb_club_entry;
typedef struct lb_club_change {
    lb_club_entry *entry; /* NULL: nothing changed; valid while the state lives */
    int64_t last_access_ms[2]; /* [0] before, [1] after */
    double max_progress[2];
    int fired_days[2];
} lb_club_change;

/* Looks at a normalized event before its segmentations are evaluated: adds
 * club.previous_progress to a club.progress event, and records logins and
 * progress. Returns 1 and fills *changed (pointing into the state: valid
 * until the next call) and *change when the activity of that lead changed
 * and must be stored with the event; 0 when the event says nothing about
 * Club activity (then change->entry is NULL). */
int lb_club_state_observe(lb_club_state *s, json_object *event, lb_club_activity *changed,
                          lb_club_change *change);

/* Calls make(ud, activity, days, change) for each lead that crossed 15 or 30
 * days without login since the last scan (at most one call per lead and
 * period); change says what the scan marked, to take back if the event the
 * call makes is not stored. */
typedef void (*lb_club_inactive_fn)(void *ud, const lb_club_activity *a, int days, const lb_club_change *change);
void lb_club_state_scan(lb_club_state *s, int64_t now_ms, lb_club_inactive_fn make, void *ud);

/* Takes a change back if the lead's state is still what the change left;
 * returns whether it did. A later change built on it is taken back first,
 * or not at all if it was stored. */
bool lb_club_change_undo(const lb_club_change *change);

/* The club.inactive event for a lead (a new normalized document, source
 * "scheduler"), ready for the ingest. */
json_object *lb_club_inactive_event(const lb_club_activity *a, int days, int64_t now_ms);

#endif
