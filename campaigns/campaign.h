/*
 * campaign: the campaign definition file (campaign.yaml) users submit.
 *
 *   name: Spring sale               # required
 *   from: "Shop <news@shop.example>"   # required, RFC 5322 mailbox
 *   reply_to: help@shop.example     # optional
 *   subject: "Hello {{first_name}}" # required (template)
 *   text: |  ...   or  text_file: body.txt   (relative to the yaml file)
 *   html: |  ...   or  html_file: body.html  (at least one of text/html)
 *   headers:                        # optional extra headers
 *     X-Campaign: spring
 *
 * Owns: struct campaign_def and its strings. Errors are reported as
 * "FILE:LINE:COL: message". Must not touch: Redis, templates (it only
 * carries their sources).
 */
#ifndef ENGINE_CAMPAIGNS_CAMPAIGN_H
#define ENGINE_CAMPAIGNS_CAMPAIGN_H

#include <stddef.h>

struct campaign_header {
	char	*name;
	char	*value;
};

struct campaign_def {
	char	*name;
	char	*from;		/* as written: "Name <addr>" or "addr" */
	char	*from_addr;	/* the bare address */
	char	*reply_to;	/* NULL when absent */
	char	*subject;
	char	*text;		/* NULL when absent */
	char	*html;		/* NULL when absent */
	struct campaign_header *headers;
	size_t	 nheaders;
};

/* 0, or -EINVAL/-errno with "FILE:LINE:COL: message" in err. */
int	campaign_def_load(const char *path, struct campaign_def **out,
	    char *err, size_t errlen);
int	campaign_def_load_string(const char *yaml, size_t len,
	    const char *name, const char *basedir, struct campaign_def **out,
	    char *err, size_t errlen);
void	campaign_def_free(struct campaign_def *d);

#endif
