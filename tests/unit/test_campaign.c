#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "campaigns/campaign.h"

#define HEAD "name: N\nfrom: a@b.test\nsubject: S\n"

static struct campaign_def *
load_ok(const char *yaml, const char *basedir)
{
	struct campaign_def	*d = NULL;
	char			 err[256] = "";

	cr_assert_eq(campaign_def_load_string(yaml, strlen(yaml), "c.yaml",
	    basedir, &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_not_null(d);
	return d;
}

static void
load_err(const char *yaml, int rc, const char *want)
{
	struct campaign_def	*d = (struct campaign_def *)0x1;
	char			 err[256] = "";

	cr_assert_eq(campaign_def_load_string(yaml, strlen(yaml), "c.yaml",
	    NULL, &d, err, sizeof(err)), rc, "for %s (%s)", yaml, err);
	cr_assert_eq(d, (struct campaign_def *)0x1);
	cr_assert_str_eq(err, want);
}

Test(campaign, minimal_inline)
{
	struct campaign_def *d = load_ok("name: Spring sale\n"
	    "from: news@shop.example\nsubject: \"Hello {{first_name}}\"\n"
	    "text: |\n  Hi {{first_name}}\n  bye\n", NULL);

	cr_assert_str_eq(d->name, "Spring sale");
	cr_assert_str_eq(d->from, "news@shop.example");
	cr_assert_str_eq(d->from_addr, "news@shop.example");
	cr_assert_null(d->reply_to);
	cr_assert_str_eq(d->subject, "Hello {{first_name}}");
	cr_assert_str_eq(d->text, "Hi {{first_name}}\nbye\n");
	cr_assert_null(d->html);
	cr_assert_eq(d->nheaders, 0);
	campaign_def_free(d);
}

Test(campaign, from_forms)
{
	struct campaign_def *d;

	d = load_ok("name: N\nfrom: \"Shop <news@shop.example>\"\n"
	    "subject: S\nhtml: <p>x</p>\n", NULL);
	cr_assert_str_eq(d->from, "Shop <news@shop.example>");
	cr_assert_str_eq(d->from_addr, "news@shop.example");
	cr_assert_str_eq(d->html, "<p>x</p>");
	campaign_def_free(d);
	d = load_ok("name: N\nfrom: '\"Shop, Inc.\" <a@b.test>'\n"
	    "subject: S\ntext: t\nreply_to: Help Desk <help@b.test>\n", NULL);
	cr_assert_str_eq(d->from_addr, "a@b.test");
	cr_assert_str_eq(d->reply_to, "Help Desk <help@b.test>");
	campaign_def_free(d);
	d = load_ok("name: N\nfrom: <a@b.test>\nsubject: S\ntext: t\n", NULL);
	cr_assert_str_eq(d->from_addr, "a@b.test");
	campaign_def_free(d);
	d = load_ok("name: N\nfrom: \"Zo\xc3\xab <zo\xc3\xab@b.test>\"\n"
	    "subject: S\ntext: t\n", NULL);
	cr_assert_str_eq(d->from_addr, "zo\xc3\xab@b.test");
	campaign_def_free(d);
}

Test(campaign, bad_from)
{
	load_err("name: N\nfrom: Shop <not an address>\nsubject: S\ntext: t\n",
	    -EINVAL, "c.yaml:2:7: from: invalid address: invalid character "
	    "in local part");
	load_err("name: N\nfrom: shop.example\nsubject: S\ntext: t\n",
	    -EINVAL, "c.yaml:2:7: from: invalid address: missing @");
	load_err("name: N\nfrom: Shop <a@b.test\nsubject: S\ntext: t\n",
	    -EINVAL, "c.yaml:2:7: from: expected \"Name <address>\" or an "
	    "address");
	load_err("name: N\nfrom: A <x> <a@b.test>\nsubject: S\ntext: t\n",
	    -EINVAL, "c.yaml:2:7: from: stray '<' in display name");
	load_err("name: N\nfrom: \"\\\"A <a@b.test>\"\nsubject: S\ntext: t\n",
	    -EINVAL, "c.yaml:2:7: from: unbalanced quotes in display name");
	load_err("name: N\nfrom: \"a@b.test\\r\\nBcc: x@y\"\nsubject: S\n"
	    "text: t\n", -EINVAL, "c.yaml:2:7: from: must be one line "
	    "without control characters");
	load_err("name: N\nfrom: a@b.test\nreply_to: nope\nsubject: S\n"
	    "text: t\n", -EINVAL,
	    "c.yaml:3:11: reply_to: invalid address: missing @");
}

Test(campaign, required_keys)
{
	load_err("from: a@b.test\nsubject: S\ntext: t\n", -EINVAL,
	    "c.yaml:1:1: missing required key: name");
	load_err("name: N\nsubject: S\ntext: t\n", -EINVAL,
	    "c.yaml:1:1: missing required key: from");
	load_err("name: N\nfrom: a@b.test\ntext: t\n", -EINVAL,
	    "c.yaml:1:1: missing required key: subject");
	load_err(HEAD, -EINVAL, "c.yaml:1:1: missing body: one of text, "
	    "text_file, html, html_file");
	load_err("", -EINVAL, "c.yaml:1:1: missing required key: name");
	load_err("name: \"\"\nfrom: a@b.test\nsubject: S\ntext: t\n", -EINVAL,
	    "c.yaml:1:7: name: must not be empty");
}

Test(campaign, structure_errors)
{
	load_err(HEAD "text: t\nsubjetc: x\n", -EINVAL,
	    "c.yaml:5:1: subjetc: unknown key");
	load_err(HEAD "text: t\nsubject: again\n", -EINVAL,
	    "c.yaml:5:1: subject: duplicate key");
	load_err(HEAD "text: t\ntext_file: b.txt\n", -EINVAL,
	    "c.yaml:5:1: text_file: use either text or text_file, not both");
	load_err(HEAD "html_file: b.html\nhtml: x\n", -EINVAL,
	    "c.yaml:5:1: html: use either html or html_file, not both");
	load_err("- a\n", -EINVAL, "c.yaml:1:1: expected a mapping");
	load_err("name: [N]\nfrom: a@b.test\nsubject: S\ntext: t\n", -EINVAL,
	    "c.yaml:1:7: name: expected a string");
	load_err(HEAD "text: {a: 1}\n", -EINVAL,
	    "c.yaml:4:7: text: expected a string");
	load_err(HEAD "text: \"a\\0b\"\n", -EINVAL,
	    "c.yaml:4:7: text: NUL not allowed");
	load_err("name: N\nfrom: a@b.test\nsubject: \"Hi\\nBcc: x@y\"\n"
	    "text: t\n", -EINVAL, "c.yaml:3:10: subject: must be one line "
	    "without control characters");
	load_err(HEAD "text: t\n---\nname: M\n", -EINVAL,
	    "c.yaml:6:1: only one YAML document allowed");
}

Test(campaign, yaml_syntax_error)
{
	load_err("name: N\nfrom: [a\n", -EINVAL, "c.yaml:3:1: did not find "
	    "expected ',' or ']' while parsing a flow sequence");
}

Test(campaign, headers)
{
	struct campaign_def *d = load_ok(HEAD "text: t\nheaders:\n"
	    "  X-Campaign: spring\n  List-Unsubscribe: <mailto:u@b.test>\n"
	    "  X-Empty: \"\"\n", NULL);

	cr_assert_eq(d->nheaders, 3);
	cr_assert_str_eq(d->headers[0].name, "X-Campaign");
	cr_assert_str_eq(d->headers[0].value, "spring");
	cr_assert_str_eq(d->headers[1].name, "List-Unsubscribe");
	cr_assert_str_eq(d->headers[1].value, "<mailto:u@b.test>");
	cr_assert_str_eq(d->headers[2].value, "");
	campaign_def_free(d);
}

Test(campaign, header_errors)
{
	const char *const reserved[] = { "From", "to", "SUBJECT", "Date",
	    "message-id", "MIME-Version", "Content-Type",
	    "content-transfer-encoding", "Reply-To" };
	char yaml[256], want[256];

	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		snprintf(yaml, sizeof(yaml), HEAD "text: t\nheaders:\n"
		    "  %s: x\n", reserved[i]);
		snprintf(want, sizeof(want), "c.yaml:6:3: headers.%s: set by "
		    "ringmail itself; use the campaign keys", reserved[i]);
		load_err(yaml, -EINVAL, want);
	}
	load_err(HEAD "text: t\nheaders:\n  \"X Bad\": x\n", -EINVAL,
	    "c.yaml:6:3: headers: invalid header name (printable ASCII "
	    "without ':' or space, at most 64)");
	load_err(HEAD "text: t\nheaders:\n  \"X:Bad\": x\n", -EINVAL,
	    "c.yaml:6:3: headers: invalid header name (printable ASCII "
	    "without ':' or space, at most 64)");
	load_err(HEAD "text: t\nheaders:\n  \"X-\xc3\xa9\": x\n", -EINVAL,
	    "c.yaml:6:3: headers: invalid header name (printable ASCII "
	    "without ':' or space, at most 64)");
	load_err(HEAD "text: t\nheaders:\n  X-A: \"1\\r\\nBcc: v@x.test\"\n",
	    -EINVAL, "c.yaml:6:8: headers.X-A: value must be one line without"
	    " control characters, at most 900 bytes");
	load_err(HEAD "text: t\nheaders:\n  X-A: 1\n  x-a: 2\n", -EINVAL,
	    "c.yaml:7:3: headers.x-a: duplicate header");
	load_err(HEAD "text: t\nheaders:\n  X-A: [1]\n", -EINVAL,
	    "c.yaml:6:8: headers.X-A: expected a string");
	load_err(HEAD "text: t\nheaders: [a]\n", -EINVAL,
	    "c.yaml:5:10: headers: expected a mapping of Name: value");
}

/* A private directory with body files, removed at the end. */
static char tdir[64];

static void
write_file(const char *name, const char *data, size_t len)
{
	char	 path[128];
	FILE	*f;

	snprintf(path, sizeof(path), "%s/%s", tdir, name);
	cr_assert_not_null(f = fopen(path, "wb"));
	cr_assert_eq(fwrite(data, 1, len, f), len);
	fclose(f);
}

static void
mk_tdir(void)
{
	strcpy(tdir, "/tmp/rm-campaign-XXXXXX");
	cr_assert_not_null(mkdtemp(tdir));
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
rm_tdir(void)
{
	cr_assert_eq(nftw(tdir, rm_one, 8, FTW_DEPTH | FTW_PHYS), 0);
}

Test(campaign, body_files_relative_to_basedir)
{
	struct campaign_def	*d = NULL;
	char			 path[128], err[256] = "";
	const char		*yaml = HEAD "text_file: body.txt\n"
	    "html_file: sub/body.html\n";

	mk_tdir();
	write_file("body.txt", "Hi {{first_name}}\n", 18);
	snprintf(path, sizeof(path), "%s/sub", tdir);
	cr_assert_eq(mkdir(path, 0700), 0);
	write_file("sub/body.html", "<p>caf\xc3\xa9</p>", 12);
	d = load_ok(yaml, tdir);
	cr_assert_str_eq(d->text, "Hi {{first_name}}\n");
	cr_assert_str_eq(d->html, "<p>caf\xc3\xa9</p>");
	campaign_def_free(d);

	/* campaign_def_load uses the yaml file's own directory. */
	write_file("campaign.yaml", yaml, strlen(yaml));
	snprintf(path, sizeof(path), "%s/campaign.yaml", tdir);
	cr_assert_eq(campaign_def_load(path, &d, err, sizeof(err)), 0, "%s",
	    err);
	cr_assert_str_eq(d->html, "<p>caf\xc3\xa9</p>");
	campaign_def_free(d);
	rm_tdir();
}

Test(campaign, body_file_errors)
{
	struct campaign_def	*d = NULL;
	char			 err[256] = "", want[256];
	const char		*yaml = HEAD "text_file: missing.txt\n";

	mk_tdir();
	cr_assert_eq(campaign_def_load_string(yaml, strlen(yaml), "c.yaml",
	    tdir, &d, err, sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want), "c.yaml:4:12: text_file: cannot open "
	    "%s/missing.txt: No such file or directory", tdir);
	cr_assert_str_eq(err, want);
	cr_assert_null(d);

	write_file("bad.html", "<p>\xff</p>", 8);
	yaml = HEAD "html_file: bad.html\n";
	cr_assert_eq(campaign_def_load_string(yaml, strlen(yaml), "c.yaml",
	    tdir, &d, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "c.yaml:4:12: html_file: %s/bad.html is "
	    "not valid UTF-8 text", tdir);
	cr_assert_str_eq(err, want);

	/* Devices, FIFOs and directories are refused, never read. */
	yaml = HEAD "text_file: /dev/zero\n";
	cr_assert_eq(campaign_def_load_string(yaml, strlen(yaml), "c.yaml",
	    tdir, &d, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "c.yaml:4:12: text_file: /dev/zero is not a "
	    "regular file");
	snprintf(want, sizeof(want), "%s/fifo", tdir);
	cr_assert_eq(mkfifo(want, 0600), 0);
	yaml = HEAD "text_file: fifo\n";
	cr_assert_eq(campaign_def_load_string(yaml, strlen(yaml), "c.yaml",
	    tdir, &d, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "is not a regular file") != NULL, "%s", err);
	yaml = HEAD "text_file: .\n";
	cr_assert_eq(campaign_def_load_string(yaml, strlen(yaml), "c.yaml",
	    tdir, &d, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "is not a regular file") != NULL, "%s", err);

	write_file("nul.txt", "a\0b", 3);
	yaml = HEAD "text_file: nul.txt\n";
	cr_assert_eq(campaign_def_load_string(yaml, strlen(yaml), "c.yaml",
	    tdir, &d, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "not valid UTF-8 text") != NULL, "%s", err);
	rm_tdir();
}

Test(campaign, missing_file)
{
	struct campaign_def	*d = NULL;
	char			 err[256];

	cr_assert_eq(campaign_def_load("/nonexistent/c.yaml", &d, err,
	    sizeof(err)), -ENOENT);
	cr_assert_null(d);
	cr_assert_str_eq(err, "/nonexistent/c.yaml: No such file or directory");
}

Test(campaign, shipped_example_loads)
{
	struct campaign_def	*d = NULL;
	char			 err[256] = "";
	const char		*p = "campaigns/examples/welcome/campaign.yaml";
	int			 rc;

	if (access(p, R_OK) != 0)
		p = "../../campaigns/examples/welcome/campaign.yaml";
	rc = campaign_def_load(p, &d, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_str_eq(d->from_addr, "welcome@demo.test");
	cr_assert_not_null(d->text);
	cr_assert_not_null(d->html);
	cr_assert(strstr(d->text, "{{first_name}}") != NULL);
	cr_assert(strstr(d->html, "{{city}}") != NULL);
	cr_assert(strstr(d->subject, "{{first_name}}") != NULL);
	cr_assert_eq(d->nheaders, 2);
	campaign_def_free(d);
}

Test(campaign, attachments_and_inline)
{
	struct campaign_def	*d;
	const char		*yaml = HEAD "html: \"<img src='cid:logo'>\"\n"
	    "attachments:\n"
	    "  - { file: terms.pdf, content_type: application/pdf }\n"
	    "  - { file: \"Gr\xc3\xbc\xc3\x9f""e.bin\" }\n"
	    "inline:\n"
	    "  - { file: img/logo.png, cid: logo }\n";
	char			 sub[512];

	mk_tdir();
	write_file("terms.pdf", "%PDF\0\1", 6);
	write_file("Gr\xc3\xbc\xc3\x9f""e.bin", "\xff\xfe", 2);
	snprintf(sub, sizeof(sub), "%s/img", tdir);
	cr_assert_eq(mkdir(sub, 0700), 0);
	write_file("img/logo.png", "\x89PNG", 4);
	d = load_ok(yaml, tdir);
	cr_assert_eq(d->nfiles, 3);
	cr_assert_str_eq(d->files[0].filename, "terms.pdf");
	cr_assert_str_eq(d->files[0].content_type, "application/pdf");
	cr_assert_null(d->files[0].cid);
	cr_assert_eq(d->files[0].len, 6);
	cr_assert(memcmp(d->files[0].data, "%PDF\0\1", 6) == 0);
	cr_assert_str_eq(d->files[1].content_type,
	    "application/octet-stream");
	cr_assert_str_eq(d->files[2].filename, "logo.png");
	cr_assert_str_eq(d->files[2].content_type, "image/png");
	cr_assert_str_eq(d->files[2].cid, "logo");
	campaign_def_free(d);
	rm_tdir();
}

Test(campaign, attachment_errors)
{
	struct campaign_def	*d = NULL;
	char			 err[256] = "";
	static const struct {
		const char	*yaml;
		const char	*want;
	} cases[] = {
		{ HEAD "html: x\ninline:\n  - { file: a.png }\n", "missing cid" },
		{ HEAD "text: x\ninline:\n  - { file: a.png, cid: a }\n",
		  "need an html body" },
		{ HEAD "html: x\ninline:\n  - { file: a.dat, cid: a }\n",
		  "content_type required" },
		{ HEAD "html: x\ninline:\n  - { file: a.png, cid: \"a b\" }\n",
		  "inline.cid" },
		{ HEAD "html: x\ninline:\n  - { file: a.png, cid: a }\n"
		  "  - { file: a.png, cid: a }\n", "duplicate cid" },
		{ HEAD "text: x\nattachments:\n  - { file: a.png, "
		  "content_type: \"text/plain\\r\\nX: y\" }\n", "type/subtype" },
		{ HEAD "text: x\nattachments:\n  - { file: nope.pdf }\n",
		  "cannot open" },
		{ HEAD "text: x\nattachments:\n  - { file: a.png, size: 1 }\n",
		  "unknown or duplicate key" },
		{ HEAD "text: x\nattachments: a.png\n", "expected a list" },
		{ HEAD "text: x\nattachments:\n  - { file: /dev/zero }\n",
		  "not a regular file" },
	};

	mk_tdir();
	write_file("a.png", "png", 3);
	write_file("a.dat", "dat", 3);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(campaign_def_load_string(cases[i].yaml,
		    strlen(cases[i].yaml), "c.yaml", tdir, &d, err,
		    sizeof(err)), i == 6 ? -ENOENT : -EINVAL, "case %zu: %s",
		    i, err);
		cr_assert_not_null(strstr(err, cases[i].want), "case %zu: %s",
		    i, err);
		cr_assert_null(d);
	}
	rm_tdir();
}
