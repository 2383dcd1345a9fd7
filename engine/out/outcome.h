/*
 * outcome: the one place that maps an SMTP result to what happens to the
 * recipient (like Postfix's smtp_trouble.c). Pure; no I/O.
 *
 *   2xx after the final dot        -> DELIVERED
 *   5xx at any stage               -> BOUNCED (hard)
 *   4xx, no reply (timeout, close,
 *   garbage), connection failures  -> DEFERRED (retried later)
 *   deferred too often             -> FAILED (final, last error kept)
 *   deferred past retry.max_age    -> EXPIRED (final, last error kept)
 *   on a suppression list          -> SUPPRESSED (final, never sent)
 *   campaign cancelled             -> CANCELLED (final, never sent)
 */
#ifndef ENGINE_OUT_OUTCOME_H
#define ENGINE_OUT_OUTCOME_H

#include <stdbool.h>

#include "out/smtpc.h"

enum outcome { OUTCOME_DELIVERED, OUTCOME_DEFERRED, OUTCOME_BOUNCED,
	OUTCOME_FAILED, OUTCOME_EXPIRED, OUTCOME_SUPPRESSED, OUTCOME_CANCELLED };
#define OUTCOME__COUNT	7

enum outcome outcome_of(const struct smtpc_result *r);
/* Event type: "delivered" "deferred" "bounced" "failed" "expired"
 * "suppressed" "cancelled". */
const char *outcome_name(enum outcome o);
/* Counter field in the stats hash ("sent" for delivered). */
const char *outcome_counter(enum outcome o);
bool	outcome_is_final(enum outcome o);

#endif
