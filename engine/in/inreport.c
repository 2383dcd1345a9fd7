/* inreport: bounce-domain message -> event. See inreport.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/classify.h"
#include "mail/dsn.h"
#include "mail/token.h"

#include "in/inreport.h"

const char *
inreport_kind_name(enum inreport_kind k)
{
	switch (k) {
	case INREPORT_UNATTRIBUTED:
		return "unattributed";
	case INREPORT_BOUNCED:
		return "bounced";
	case INREPORT_COMPLAINED:
		return "complained";
	case INREPORT_AUTOREPLY:
		return "auto-reply";
	case INREPORT_OTHER:
		return "other";
	}
	return "unknown";
}

/* Copy src into dst, control characters as spaces (Redis fields, logs). */
static void
inreport_copy(char *dst, size_t dstsz, const char *src)
{
	size_t i;

	for (i = 0; i + 1 < dstsz && src[i] != '\0'; i++)
		dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ?
		    ' ' : src[i];
	dst[i] = '\0';
}

int
inreport_analyze(const struct token_key *key, const char *local,
    size_t local_len, const char *msg, size_t len, struct inreport *out)
{
	struct dsn_result	*d;
	int			 rc;

	memset(out, 0, sizeof(*out));
	out->kind = INREPORT_UNATTRIBUTED;
	out->token_err = -EINVAL;
	if (key == NULL)
		return 0;
	rc = verp_decode(key, local, local_len, out->campaign, &out->index);
	out->token_err = rc;
	if (rc != 0) {
		out->campaign[0] = '\0';
		return 0;
	}
	/* dsn_result is large (original headers): keep it off the stack. */
	if ((d = malloc(sizeof(*d))) == NULL)
		return -ENOMEM;
	if ((rc = dsn_parse(msg, len, d)) != 0) {
		free(d);
		return rc;
	}
	inreport_copy(out->rcpt, sizeof(out->rcpt), d->recipient[0] != '\0' ?
	    d->recipient : d->orig_recipient);
	out->code = d->smtp_code;
	inreport_copy(out->esc, sizeof(out->esc), d->status);
	inreport_copy(out->text, sizeof(out->text), d->reason);
	inreport_copy(out->dest, sizeof(out->dest), d->remote_mta);
	snprintf(out->category, sizeof(out->category), "%s",
	    classify_category_name(d->cls.category));
	if (d->kind == DSN_KIND_ARF) {
		out->kind = INREPORT_COMPLAINED;
		out->suppress = true;
		snprintf(out->category, sizeof(out->category), "%s",
		    classify_category_name(CLASSIFY_COMPLAINT));
		if (out->text[0] == '\0')
			inreport_copy(out->text, sizeof(out->text),
			    d->feedback_type);
	} else if (d->kind == DSN_KIND_AUTOREPLY) {
		out->kind = INREPORT_AUTOREPLY;
	} else if (d->is_bounce) {
		out->kind = INREPORT_BOUNCED;
		out->suppress = (d->cls.actions & CLASSIFY_A_SUPPRESS) != 0;
	} else {
		out->kind = INREPORT_OTHER;
	}
	free(d);
	return 0;
}
