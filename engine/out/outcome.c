/* outcome: SMTP result -> recipient outcome. See outcome.h. */
#include "out/outcome.h"

enum outcome
outcome_of(const struct smtpc_result *r)
{
	if (r->code >= 200 && r->code < 300)
		return r->stage == SMTPC_ST_DOT ? OUTCOME_DELIVERED :
		    OUTCOME_DEFERRED;	/* 2xx but not at the end: odd peer */
	if (r->code >= 500 && r->code < 600)
		return OUTCOME_BOUNCED;
	return OUTCOME_DEFERRED;
}

const char *
outcome_name(enum outcome o)
{
	switch (o) {
	case OUTCOME_DELIVERED:
		return "delivered";
	case OUTCOME_DEFERRED:
		return "deferred";
	case OUTCOME_BOUNCED:
		return "bounced";
	case OUTCOME_FAILED:
		return "failed";
	case OUTCOME_EXPIRED:
		return "expired";
	case OUTCOME_SUPPRESSED:
		return "suppressed";
	case OUTCOME_CANCELLED:
		return "cancelled";
	}
	return "?";
}

const char *
outcome_counter(enum outcome o)
{
	return o == OUTCOME_DELIVERED ? "sent" : outcome_name(o);
}

bool
outcome_is_final(enum outcome o)
{
	return o != OUTCOME_DEFERRED;
}
