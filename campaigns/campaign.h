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
 *   attachments:                    # optional files, multipart/mixed
 *     - { file: terms.pdf, content_type: application/pdf }
 *   inline:                         # optional images for the html,
 *     - { file: logo.png, cid: logo }   # <img src="cid:logo">
 *
 * Attachment and inline files are relative to the yaml file (absolute
 * paths allowed), read whole at load time: at most CAMPAIGN_FILES_MAX
 * files, each at most CAMPAIGN_ATTACH_MAX bytes and all together at most
 * CAMPAIGN_ATTACH_TOTAL. content_type is "type/subtype" (optional for
 * inline .png/.jpg/.jpeg/.gif/.webp/.svg, and for attachments, where it
 * defaults to application/octet-stream); cid is 1..100 of
 * [A-Za-z0-9._@-], unique. The name in the message is the file's base
 * name (UTF-8, no control characters).
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

#define CAMPAIGN_FILES_MAX	16
#define CAMPAIGN_ATTACH_MAX	(10 * 1024 * 1024)
#define CAMPAIGN_ATTACH_TOTAL	(15 * 1024 * 1024)
#define CAMPAIGN_CID_MAX	100

/* An attachment (cid NULL) or an inline image (cid set). */
struct campaign_file {
	char	*filename;	/* owns: base name as written in the mail */
	char	*content_type;	/* owns */
	char	*cid;		/* owns; NULL = attachment */
	char	*data;		/* owns: the file's bytes */
	size_t	 len;
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
	struct campaign_file *files;	/* attachments, then inline */
	size_t	 nfiles;
};

/* 0, or -EINVAL/-errno with "FILE:LINE:COL: message" in err. */
int	campaign_def_load(const char *path, struct campaign_def **out,
	    char *err, size_t errlen);
int	campaign_def_load_string(const char *yaml, size_t len,
	    const char *name, const char *basedir, struct campaign_def **out,
	    char *err, size_t errlen);
void	campaign_def_free(struct campaign_def *d);

#endif
