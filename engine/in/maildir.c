/* maildir: Maildir++ store with a UID list. See maildir.h. */
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"

#include "in/maildir.h"

#define MAILDIR_UIDLIST		"ringmail-uidlist"
#define MAILDIR_UIDLIST_TMP	"ringmail-uidlist.tmp"
#define MAILDIR_UIDLIST_LOCK	"ringmail-uidlist.lock"
/* A message larger than this is refused on read (the SMTP side caps far
 * lower); it bounds what one FETCH can make us allocate. */
#define MAILDIR_MSG_MAX		(64u * 1024 * 1024)

struct maildir_uident {
	uint32_t	 uid;
	char		*base;	/* owns */
};

struct maildir_dirent {
	char		*base;	/* owns */
	char		*name;	/* owns: "cur/..." or "new/..." */
	unsigned	 flags;
	bool		 in_new;
	uint32_t	 uid;
};

/* Q<n> in unique names; atomic because deliveries may run on several
 * worker threads of one process within the same microsecond. */
static unsigned	maildir_counter;

int
maildir_create(const char *path)
{
	static const char *const sub[] = { "tmp", "new", "cur" };
	char	 p[MAILDIR_PATH_MAX];

	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return -errno;
	for (size_t i = 0; i < 3; i++) {
		if ((size_t)snprintf(p, sizeof(p), "%s/%s", path, sub[i]) >=
		    sizeof(p))
			return -ENAMETOOLONG;
		if (mkdir(p, 0700) != 0 && errno != EEXIST)
			return -errno;
	}
	return 0;
}

bool
maildir_name_is_inbox(const char *name)
{
	return strcasecmp(name, "INBOX") == 0;
}

bool
maildir_name_valid(const char *name)
{
	size_t	 n = strlen(name);

	if (maildir_name_is_inbox(name))
		return true;
	if (n == 0 || n > MAILDIR_NAME_MAX)
		return false;
	if (name[0] == '.' || name[n - 1] == '.' || strstr(name, "..") != NULL)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c < 0x20 || c > 0x7e || c == '/' || c == '\\' ||
		    c == '*' || c == '%')
			return false;
	}
	/* "INBOX.x" would be a second spelling of a folder; keep one. */
	if (strncasecmp(name, "INBOX.", 6) == 0)
		return false;
	return true;
}

int
maildir_box_path(const char *root, const char *name, char *out, size_t outlen)
{
	int	 n;

	if (!maildir_name_valid(name))
		return -EINVAL;
	if (maildir_name_is_inbox(name))
		n = snprintf(out, outlen, "%s", root);
	else
		n = snprintf(out, outlen, "%s/.%s", root, name);
	if (n < 0 || (size_t)n >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

int
maildir_list(const char *root, int (*cb)(const char *name, void *arg),
    void *arg)
{
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	char		 p[MAILDIR_PATH_MAX];
	int		 r;

	if ((r = cb("INBOX", arg)) != 0)
		return r;
	if ((d = opendir(root)) == NULL)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		const char *nm = de->d_name;

		if (nm[0] != '.' || nm[1] == '\0' || nm[1] == '.')
			continue;
		if (!maildir_name_valid(nm + 1) ||
		    maildir_name_is_inbox(nm + 1))
			continue;
		if ((size_t)snprintf(p, sizeof(p), "%s/%s/cur", root, nm) >=
		    sizeof(p))
			continue;
		if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
			continue;
		if ((r = cb(nm + 1, arg)) != 0) {
			closedir(d);
			return r;
		}
	}
	closedir(d);
	return 0;
}

void
maildir_flags_str(unsigned flags, char *out)
{
	/* Maildir wants the letters in ASCII order. */
	if (flags & MAILDIR_F_DRAFT)
		*out++ = 'D';
	if (flags & MAILDIR_F_FLAGGED)
		*out++ = 'F';
	if (flags & MAILDIR_F_ANSWERED)
		*out++ = 'R';
	if (flags & MAILDIR_F_SEEN)
		*out++ = 'S';
	if (flags & MAILDIR_F_DELETED)
		*out++ = 'T';
	*out = '\0';
}

unsigned
maildir_flags_parse(const char *filename)
{
	const char	*p = strstr(filename, ":2,");
	unsigned	 f = 0;

	if (p == NULL)
		return 0;
	for (p += 3; *p != '\0'; p++) {
		switch (*p) {
		case 'D': f |= MAILDIR_F_DRAFT; break;
		case 'F': f |= MAILDIR_F_FLAGGED; break;
		case 'R': f |= MAILDIR_F_ANSWERED; break;
		case 'S': f |= MAILDIR_F_SEEN; break;
		case 'T': f |= MAILDIR_F_DELETED; break;
		default: break;
		}
	}
	return f;
}

/* RFC 822 size from a ",W=<n>" field of the base name; 0 when absent. */
static uint64_t
maildir_base_vsize(const char *base)
{
	const char	*p = strstr(base, ",W=");
	uint64_t	 v = 0;

	if (p == NULL)
		return 0;
	for (p += 3; *p >= '0' && *p <= '9'; p++) {
		if (v > UINT64_MAX / 10 - 10)
			return 0;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	return v;
}

static int
maildir_uident_cmp(const void *a, const void *b)
{
	return strcmp(((const struct maildir_uident *)a)->base,
	    ((const struct maildir_uident *)b)->base);
}

/*
 * Natural order: digit runs compare as numbers. Unique names start with
 * "<sec>.M<usec>P<pid>Q<n>", and other tools do not zero-pad, so this is
 * what puts "M95" before "M100000": new UIDs follow arrival order. Ties
 * (leading zeros) fall back to strcmp, keeping the order total.
 */
static int
maildir_natcmp(const char *a, const char *b)
{
	const char	*a0 = a, *b0 = b;

	while (*a != '\0' && *b != '\0') {
		if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
			size_t	 la, lb;
			int	 c;

			while (*a == '0')
				a++;
			while (*b == '0')
				b++;
			la = strspn(a, "0123456789");
			lb = strspn(b, "0123456789");
			if (la != lb)
				return la < lb ? -1 : 1;
			if ((c = strncmp(a, b, la)) != 0)
				return c;
			a += la;
			b += lb;
			continue;
		}
		if (*a != *b)
			return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
		a++;
		b++;
	}
	if (*a != *b)
		return *a == '\0' ? -1 : 1;
	return strcmp(a0, b0);
}

static int
maildir_dirent_cmp(const void *a, const void *b)
{
	return maildir_natcmp(((const struct maildir_dirent *)a)->base,
	    ((const struct maildir_dirent *)b)->base);
}

static int
maildir_msg_cmp(const void *a, const void *b)
{
	uint32_t x = ((const struct maildir_msg *)a)->uid;
	uint32_t y = ((const struct maildir_msg *)b)->uid;

	return x < y ? -1 : x > y;
}

struct maildir_uidlist {
	uint32_t		 uidvalidity;
	uint32_t		 uidnext;
	struct maildir_uident	*ents;	/* owns; sorted by base */
	size_t			 n;
	size_t			 cap;
};

static void
maildir_uidlist_free(struct maildir_uidlist *ul)
{
	for (size_t i = 0; i < ul->n; i++)
		free(ul->ents[i].base);
	free(ul->ents);
	memset(ul, 0, sizeof(*ul));
}

static int
maildir_uidlist_add(struct maildir_uidlist *ul, uint32_t uid, const char *base)
{
	if (ul->n == ul->cap) {
		size_t ncap = ul->cap ? ul->cap * 2 : 64;
		struct maildir_uident *p;

		if ((p = realloc(ul->ents, ncap * sizeof(*p))) == NULL)
			return -ENOMEM;
		ul->ents = p;
		ul->cap = ncap;
	}
	if ((ul->ents[ul->n].base = strdup(base)) == NULL)
		return -ENOMEM;
	ul->ents[ul->n].uid = uid;
	ul->n++;
	return 0;
}

/* Read the uidlist; a missing file leaves ul empty with uidvalidity 0. */
static int
maildir_uidlist_load(const char *dir, struct maildir_uidlist *ul)
{
	char	 p[MAILDIR_PATH_MAX], line[600];
	FILE	*f;
	int	 r = 0;

	memset(ul, 0, sizeof(*ul));
	if ((size_t)snprintf(p, sizeof(p), "%s/" MAILDIR_UIDLIST, dir) >=
	    sizeof(p))
		return -ENAMETOOLONG;
	if ((f = fopen(p, "r")) == NULL)
		return errno == ENOENT ? 0 : -errno;
	if (fgets(line, sizeof(line), f) != NULL) {
		unsigned long v, nx;

		if (sscanf(line, "1 V%lu N%lu", &v, &nx) == 2 &&
		    v <= UINT32_MAX && nx <= UINT32_MAX) {
			ul->uidvalidity = (uint32_t)v;
			ul->uidnext = (uint32_t)nx;
		}
	}
	while (r == 0 && fgets(line, sizeof(line), f) != NULL) {
		char		*sp, *end;
		unsigned long	 uid;

		line[strcspn(line, "\n")] = '\0';
		if ((sp = strchr(line, ' ')) == NULL)
			continue;
		*sp = '\0';
		uid = strtoul(line, &end, 10);
		if (*end != '\0' || uid == 0 || uid >= ul->uidnext ||
		    sp[1] == '\0' || strchr(sp + 1, '/') != NULL)
			continue;
		r = maildir_uidlist_add(ul, (uint32_t)uid, sp + 1);
	}
	fclose(f);
	if (r == 0 && ul->n > 0)
		qsort(ul->ents, ul->n, sizeof(*ul->ents), maildir_uident_cmp);
	return r;
}

static const struct maildir_uident *
maildir_uidlist_find(const struct maildir_uidlist *ul, const char *base)
{
	struct maildir_uident key = { 0, (char *)(uintptr_t)base };

	if (ul->n == 0)
		return NULL;
	return bsearch(&key, ul->ents, ul->n, sizeof(*ul->ents),
	    maildir_uident_cmp);
}

static int
maildir_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Write the UID list for the present directory entries, atomically. */
static int
maildir_uidlist_save(const char *dir, uint32_t uidvalidity, uint32_t uidnext,
    const struct maildir_dirent *ents, size_t n)
{
	char		 tmp[MAILDIR_PATH_MAX], dst[MAILDIR_PATH_MAX];
	struct buf	 b;
	int		 fd, r;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/" MAILDIR_UIDLIST_TMP,
	    dir) >= sizeof(tmp) ||
	    (size_t)snprintf(dst, sizeof(dst), "%s/" MAILDIR_UIDLIST, dir) >=
	    sizeof(dst))
		return -ENAMETOOLONG;
	buf_init(&b);
	r = buf_printf(&b, "1 V%u N%u\n", uidvalidity, uidnext);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = buf_printf(&b, "%u %s\n", ents[i].uid, ents[i].base);
	if (r != 0) {
		buf_free(&b);
		return r;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) < 0) {
		r = -errno;
		buf_free(&b);
		return r;
	}
	r = maildir_write_all(fd, b.data, b.len);
	buf_free(&b);
	if (r == 0 && fsync(fd) != 0)
		r = -errno;
	if (close(fd) != 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, dst) != 0)
		r = -errno;
	if (r != 0)
		unlink(tmp);
	return r;
}

static void
maildir_dirents_free(struct maildir_dirent *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].base);
		free(e[i].name);
	}
	free(e);
}

/* Collect the files of dir/sub (skipping dotfiles) into *ents. */
static int
maildir_read_sub(const char *dir, const char *sub, bool in_new,
    struct maildir_dirent **ents, size_t *n, size_t *cap)
{
	char		 p[MAILDIR_PATH_MAX];
	DIR		*d;
	struct dirent	*de;
	int		 r = 0;

	if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, sub) >= sizeof(p))
		return -ENAMETOOLONG;
	if ((d = opendir(p)) == NULL)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		struct maildir_dirent	*e;
		size_t			 blen;

		if (de->d_name[0] == '.' || strlen(de->d_name) > 255)
			continue;
		if (*n == *cap) {
			size_t ncap = *cap ? *cap * 2 : 64;

			if ((e = realloc(*ents, ncap * sizeof(*e))) == NULL) {
				r = -ENOMEM;
				break;
			}
			*ents = e;
			*cap = ncap;
		}
		e = &(*ents)[*n];
		memset(e, 0, sizeof(*e));
		blen = strcspn(de->d_name, ":");
		e->base = strndup(de->d_name, blen);
		if (e->base == NULL ||
		    asprintf(&e->name, "%s/%s", sub, de->d_name) < 0) {
			free(e->base);
			r = -ENOMEM;
			break;
		}
		e->flags = maildir_flags_parse(de->d_name);
		e->in_new = in_new;
		(*n)++;
	}
	closedir(d);
	return r;
}

/* Move new/<file> to cur/<file>:2,<flags>; updates e->name. */
static int
maildir_move_to_cur(const char *dir, struct maildir_dirent *e)
{
	char	 from[MAILDIR_PATH_MAX], to[MAILDIR_PATH_MAX], fl[8];
	char	*nn;

	maildir_flags_str(e->flags, fl);
	if (asprintf(&nn, "cur/%s:2,%s", e->base, fl) < 0)
		return -ENOMEM;
	if ((size_t)snprintf(from, sizeof(from), "%s/%s", dir, e->name) >=
	    sizeof(from) ||
	    (size_t)snprintf(to, sizeof(to), "%s/%s", dir, nn) >= sizeof(to)) {
		free(nn);
		return -ENAMETOOLONG;
	}
	if (rename(from, to) != 0) {
		int r = -errno;

		free(nn);
		return r;
	}
	free(e->name);
	e->name = nn;
	return 0;
}

static int
maildir_box_grow(struct maildir_box *box)
{
	struct maildir_msg	*p;
	size_t			 ncap;

	if (box->nmsg < box->cap)
		return 0;
	ncap = box->cap ? box->cap * 2 : 64;
	if ((p = realloc(box->msgs, ncap * sizeof(*p))) == NULL)
		return -ENOMEM;
	box->msgs = p;
	box->cap = ncap;
	return 0;
}

long
maildir_box_find_uid(const struct maildir_box *box, uint32_t uid)
{
	size_t lo = 0, hi = box->nmsg;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (box->msgs[mid].uid == uid)
			return (long)mid;
		if (box->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/*
 * The one scan: under the lock, read the uidlist and both directories,
 * give new files UIDs, reconcile box->msgs, save the uidlist if it changed.
 */
static int
maildir_scan(struct maildir_box *box, size_t *nnew)
{
	struct maildir_uidlist	 ul;
	struct maildir_dirent	*ents = NULL;
	size_t			 n = 0, cap = 0, added = 0;
	bool			 dirty = false;
	char			 lp[MAILDIR_PATH_MAX];
	int			 lfd, r;

	if ((size_t)snprintf(lp, sizeof(lp), "%s/" MAILDIR_UIDLIST_LOCK,
	    box->path) >= sizeof(lp))
		return -ENAMETOOLONG;
	if ((lfd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return -errno;
	if (flock(lfd, LOCK_EX) != 0) {
		r = -errno;
		close(lfd);
		return r;
	}
	if ((r = maildir_uidlist_load(box->path, &ul)) != 0)
		goto out;
	if (ul.uidvalidity == 0) {
		ul.uidvalidity = box->uidvalidity ? box->uidvalidity :
		    (uint32_t)time(NULL);
		ul.uidnext = box->uidnext ? box->uidnext : 1;
		dirty = true;
	}
	if (ul.uidnext < box->uidnext)
		ul.uidnext = box->uidnext;
	if ((r = maildir_read_sub(box->path, "new", true, &ents, &n,
	    &cap)) != 0 ||
	    (r = maildir_read_sub(box->path, "cur", false, &ents, &n,
	    &cap)) != 0)
		goto out;
	if (n > 0)
		qsort(ents, n, sizeof(*ents), maildir_dirent_cmp);
	for (size_t i = 0; i < n; i++) {
		const struct maildir_uident *u = maildir_uidlist_find(&ul,
		    ents[i].base);

		/* The same base twice (a crash between link and unlink in
		 * some other tool): keep the first, ignore the copy. */
		if (i > 0 && strcmp(ents[i].base, ents[i - 1].base) == 0) {
			ents[i].uid = 0;
			continue;
		}
		if (u != NULL) {
			ents[i].uid = u->uid;
		} else {
			if (ul.uidnext == UINT32_MAX) {
				r = -EOVERFLOW;
				goto out;
			}
			ents[i].uid = ul.uidnext++;
			dirty = true;
		}
		if (ents[i].in_new && box->rw)
			(void)maildir_move_to_cur(box->path, &ents[i]);
	}
	if (n != ul.n)
		dirty = true;	/* entries for vanished files are dropped */
	if (dirty) {
		/* Keep only real entries (uid != 0) in the saved list. */
		size_t k = 0;

		for (size_t i = 0; i < n; i++) {
			if (ents[i].uid != 0) {
				struct maildir_dirent t = ents[k];

				ents[k] = ents[i];
				ents[i] = t;
				k++;
			}
		}
		if ((r = maildir_uidlist_save(box->path, ul.uidvalidity,
		    ul.uidnext, ents, k)) != 0) {
			/* Without a saved list UIDs would not be stable. */
			log_msgc(LOG_WARN, -r, "maildir uidlist_save dir=%s",
			    box->path);
			goto out;
		}
	}
	box->uidvalidity = ul.uidvalidity;
	box->uidnext = ul.uidnext;

	for (size_t i = 0; i < box->nmsg; i++)
		box->msgs[i].seen_scan = false;
	for (size_t i = 0; i < n; i++) {
		struct maildir_dirent	*e = &ents[i];
		long			 j;
		struct maildir_msg	*m;
		struct stat		 st;
		char			 fp[MAILDIR_PATH_MAX];

		if (e->uid == 0)
			continue;
		if ((j = maildir_box_find_uid(box, e->uid)) >= 0) {
			m = &box->msgs[j];
			free(m->name);
			m->name = e->name;
			e->name = NULL;
			m->flags = e->flags;
			m->seen_scan = true;
			m->gone = false;
			continue;
		}
		if ((r = maildir_box_grow(box)) != 0)
			goto out;
		m = &box->msgs[box->nmsg];
		memset(m, 0, sizeof(*m));
		m->uid = e->uid;
		m->flags = e->flags;
		m->recent = e->in_new;
		m->seen_scan = true;
		m->base = e->base;
		m->name = e->name;
		e->base = e->name = NULL;
		m->size = maildir_base_vsize(m->base);
		if ((size_t)snprintf(fp, sizeof(fp), "%s/%s", box->path,
		    m->name) < sizeof(fp) && stat(fp, &st) == 0)
			m->mtime = (int64_t)st.st_mtime;
		box->nmsg++;
		added++;
	}
	for (size_t i = 0; i < box->nmsg; i++)
		if (!box->msgs[i].seen_scan)
			box->msgs[i].gone = true;
	if (box->nmsg > 1)
		qsort(box->msgs, box->nmsg, sizeof(*box->msgs),
		    maildir_msg_cmp);
	if (nnew != NULL)
		*nnew = added;
out:
	maildir_dirents_free(ents, n);
	maildir_uidlist_free(&ul);
	flock(lfd, LOCK_UN);
	close(lfd);
	return r;
}

struct maildir_box *
maildir_box_open(const char *path, bool rw, int *err)
{
	struct maildir_box	*box;
	struct stat		 st;
	char			 p[MAILDIR_PATH_MAX];
	int			 r;

	if ((size_t)snprintf(p, sizeof(p), "%s/cur", path) >= sizeof(p)) {
		*err = -ENAMETOOLONG;
		return NULL;
	}
	if (stat(p, &st) != 0) {
		*err = -errno;
		return NULL;
	}
	if ((box = calloc(1, sizeof(*box))) == NULL ||
	    (box->path = strdup(path)) == NULL) {
		free(box);
		*err = -ENOMEM;
		return NULL;
	}
	box->rw = rw;
	if ((r = maildir_scan(box, NULL)) != 0) {
		maildir_box_free(box);
		*err = r;
		return NULL;
	}
	*err = 0;
	return box;
}

void
maildir_box_free(struct maildir_box *box)
{
	if (box == NULL)
		return;
	for (size_t i = 0; i < box->nmsg; i++) {
		free(box->msgs[i].base);
		free(box->msgs[i].name);
	}
	free(box->msgs);
	free(box->path);
	free(box);
}

int
maildir_box_rescan(struct maildir_box *box, size_t *nnew)
{
	return maildir_scan(box, nnew);
}

void
maildir_box_forget(struct maildir_box *box, size_t i)
{
	if (i >= box->nmsg)
		return;
	free(box->msgs[i].base);
	free(box->msgs[i].name);
	memmove(&box->msgs[i], &box->msgs[i + 1],
	    (box->nmsg - i - 1) * sizeof(*box->msgs));
	box->nmsg--;
}

/* Open message i, rescanning once if another session renamed it. */
static int
maildir_msg_open(struct maildir_box *box, size_t *ip)
{
	size_t	 i = *ip;
	char	 p[MAILDIR_PATH_MAX];
	int	 fd;

	for (int tries = 0; tries < 2; tries++) {
		if (i >= box->nmsg || box->msgs[i].gone)
			return -ENOENT;
		if ((size_t)snprintf(p, sizeof(p), "%s/%s", box->path,
		    box->msgs[i].name) >= sizeof(p))
			return -ENAMETOOLONG;
		if ((fd = open(p, O_RDONLY | O_CLOEXEC)) >= 0) {
			*ip = i;
			return fd;
		}
		if (errno != ENOENT)
			return -errno;
		if (tries == 0) {
			uint32_t	 uid = box->msgs[i].uid;
			long		 j;
			int		 r;

			if ((r = maildir_scan(box, NULL)) != 0)
				return r;
			/* The rescan keeps the array sorted; re-find it. */
			if ((j = maildir_box_find_uid(box, uid)) < 0)
				return -ENOENT;
			i = (size_t)j;
		}
	}
	return -ENOENT;
}

int
maildir_msg_read(struct maildir_box *box, size_t i, struct buf *out)
{
	struct stat	 st;
	char		*raw;
	size_t		 n = 0, start = out->len;
	int		 fd, r;
	char		 prev = '\0';

	if ((fd = maildir_msg_open(box, &i)) < 0)
		return fd;
	if (fstat(fd, &st) != 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if ((uint64_t)st.st_size > MAILDIR_MSG_MAX) {
		close(fd);
		return -EFBIG;
	}
	if ((raw = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return -ENOMEM;
	}
	while (n < (size_t)st.st_size) {
		ssize_t k = read(fd, raw + n, (size_t)st.st_size - n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	close(fd);
	/* Bare LF -> CRLF: IMAP and POP3 sizes and bodies are CRLF. */
	if ((r = buf_reserve(out, n + n / 8 + 16)) != 0) {
		free(raw);
		return r;
	}
	for (size_t k = 0; k < n && r == 0; k++) {
		const char *q;
		size_t	    run;

		q = memchr(raw + k, '\n', n - k);
		run = q == NULL ? n - k : (size_t)(q - (raw + k));
		if (run > 0) {
			r = buf_append(out, raw + k, run);
			prev = raw[k + run - 1];
			k += run;
			if (k >= n)
				break;
		}
		if (prev != '\r')
			r = buf_putc(out, '\r');
		if (r == 0)
			r = buf_putc(out, '\n');
		prev = '\n';
	}
	free(raw);
	if (r != 0)
		return r;
	if (i < box->nmsg)
		box->msgs[i].size = out->len - start;
	return 0;
}

int
maildir_msg_size(struct maildir_box *box, size_t i, uint64_t *size)
{
	struct buf	 b;
	int		 r;

	if (i >= box->nmsg)
		return -ENOENT;
	if (box->msgs[i].size != 0 || box->msgs[i].gone) {
		*size = box->msgs[i].size;
		return 0;
	}
	buf_init(&b);
	r = maildir_msg_read(box, i, &b);
	if (r == 0)
		*size = b.len;
	buf_free(&b);
	return r;
}

int
maildir_msg_set_flags(struct maildir_box *box, size_t i, unsigned flags)
{
	char	 from[MAILDIR_PATH_MAX], to[MAILDIR_PATH_MAX], fl[8];
	char	*nn;

	if (!box->rw)
		return -EROFS;
	if (i >= box->nmsg || box->msgs[i].gone)
		return -ENOENT;
	flags &= MAILDIR_F_ALL;
	if (flags == box->msgs[i].flags &&
	    strncmp(box->msgs[i].name, "cur/", 4) == 0)
		return 0;
	maildir_flags_str(flags, fl);
	if (asprintf(&nn, "cur/%s:2,%s", box->msgs[i].base, fl) < 0)
		return -ENOMEM;
	for (int tries = 0; tries < 2; tries++) {
		if ((size_t)snprintf(from, sizeof(from), "%s/%s", box->path,
		    box->msgs[i].name) >= sizeof(from) ||
		    (size_t)snprintf(to, sizeof(to), "%s/%s", box->path,
		    nn) >= sizeof(to)) {
			free(nn);
			return -ENAMETOOLONG;
		}
		if (rename(from, to) == 0) {
			free(box->msgs[i].name);
			box->msgs[i].name = nn;
			box->msgs[i].flags = flags;
			return 0;
		}
		if (errno != ENOENT || tries == 1)
			break;
		{
			uint32_t	 uid = box->msgs[i].uid;
			long		 j;

			if (maildir_scan(box, NULL) != 0 ||
			    (j = maildir_box_find_uid(box, uid)) < 0 ||
			    box->msgs[j].gone)
				break;
			i = (size_t)j;
		}
	}
	free(nn);
	return -ENOENT;
}

int
maildir_msg_unlink(struct maildir_box *box, size_t i)
{
	char	 p[MAILDIR_PATH_MAX];

	if (!box->rw)
		return -EROFS;
	if (i >= box->nmsg)
		return -ENOENT;
	if (box->msgs[i].gone)
		return 0;
	if ((size_t)snprintf(p, sizeof(p), "%s/%s", box->path,
	    box->msgs[i].name) >= sizeof(p))
		return -ENAMETOOLONG;
	if (unlink(p) != 0 && errno != ENOENT)
		return -errno;
	box->msgs[i].gone = true;
	return 0;
}

int
maildir_deliver_open(struct maildir_delivery *d, const char *dir)
{
	struct timeval	 tv;
	char		 host[128];
	size_t		 k;

	memset(d, 0, sizeof(*d));
	d->fd = -1;
	if (strlen(dir) >= sizeof(d->dir))
		return -ENAMETOOLONG;
	strcpy(d->dir, dir);
	if (gethostname(host, sizeof(host)) != 0)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	/* '/' and ':' would break the path or the info separator. */
	for (k = 0; host[k] != '\0'; k++)
		if (host[k] == '/' || host[k] == ':' || host[k] == ',')
			host[k] = '_';
	gettimeofday(&tv, NULL);
	snprintf(d->base, sizeof(d->base), "%lld.M%06ldP%ldQ%u.%s",
	    (long long)tv.tv_sec, (long)tv.tv_usec, (long)getpid(),
	    __atomic_add_fetch(&maildir_counter, 1, __ATOMIC_RELAXED), host);
	if ((size_t)snprintf(d->tmp_path, sizeof(d->tmp_path), "%s/tmp/%s",
	    dir, d->base) >= sizeof(d->tmp_path))
		return -ENAMETOOLONG;
	d->fd = open(d->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600);
	if (d->fd < 0)
		return -errno;
	return 0;
}

int
maildir_deliver_write(struct maildir_delivery *d, const void *p, size_t n)
{
	const char	*c = p;
	int		 r;

	if (d->fd < 0)
		return -EBADF;
	for (size_t i = 0; i < n; i++) {
		if (c[i] == '\n' && (i > 0 ? c[i - 1] : d->last) != '\r')
			d->nbare_lf++;
	}
	if (n > 0)
		d->last = c[n - 1];
	if ((r = maildir_write_all(d->fd, p, n)) != 0)
		return r;
	d->size += n;
	return 0;
}

int
maildir_deliver_set_time(struct maildir_delivery *d, int64_t mtime)
{
	struct timespec	 ts[2];

	if (d->fd < 0)
		return -EBADF;
	ts[0].tv_sec = ts[1].tv_sec = (time_t)mtime;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	if (futimens(d->fd, ts) != 0)
		return -errno;
	return 0;
}

int
maildir_deliver_sync(struct maildir_delivery *d)
{
	int	 r = 0;

	if (d->fd < 0)
		return -EBADF;
	if (fsync(d->fd) != 0)
		r = -errno;
	if (close(d->fd) != 0 && r == 0)
		r = -errno;
	d->fd = -1;
	return r;
}

int
maildir_deliver_commit(struct maildir_delivery *d, bool to_cur,
    unsigned flags)
{
	char	 to[MAILDIR_PATH_MAX], fl[8];
	int	 n;

	if (d->fd >= 0)
		return -EBUSY;	/* sync first */
	maildir_flags_str(flags, fl);
	if (to_cur || flags != 0)
		n = snprintf(d->final_name, sizeof(d->final_name),
		    "cur/%s,S=%llu,W=%llu:2,%s", d->base,
		    (unsigned long long)d->size,
		    (unsigned long long)(d->size + d->nbare_lf), fl);
	else
		n = snprintf(d->final_name, sizeof(d->final_name),
		    "new/%s,S=%llu,W=%llu", d->base,
		    (unsigned long long)d->size,
		    (unsigned long long)(d->size + d->nbare_lf));
	if (n < 0 || (size_t)n >= sizeof(d->final_name))
		return -ENAMETOOLONG;
	if ((size_t)snprintf(to, sizeof(to), "%s/%s", d->dir, d->final_name) >=
	    sizeof(to))
		return -ENAMETOOLONG;
	if (rename(d->tmp_path, to) != 0)
		return -errno;
	d->tmp_path[0] = '\0';
	return 0;
}

int
maildir_deliver_syncdir(struct maildir_delivery *d)
{
	char	 p[MAILDIR_PATH_MAX];
	int	 fd, r = 0;

	if ((size_t)snprintf(p, sizeof(p), "%s/%.3s", d->dir,
	    d->final_name) >= sizeof(p))
		return -ENAMETOOLONG;
	if ((fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	if (fsync(fd) != 0)
		r = -errno;
	close(fd);
	return r;
}

void
maildir_deliver_abort(struct maildir_delivery *d)
{
	if (d->fd >= 0) {
		close(d->fd);
		d->fd = -1;
	}
	if (d->tmp_path[0] != '\0') {
		unlink(d->tmp_path);
		d->tmp_path[0] = '\0';
	}
}

int
maildir_deliver(const char *dir, const void *p, size_t n)
{
	struct maildir_delivery	 d;
	int			 r;

	if ((r = maildir_deliver_open(&d, dir)) != 0 ||
	    (r = maildir_deliver_write(&d, p, n)) != 0 ||
	    (r = maildir_deliver_sync(&d)) != 0 ||
	    (r = maildir_deliver_commit(&d, false, 0)) != 0) {
		maildir_deliver_abort(&d);
		return r;
	}
	return maildir_deliver_syncdir(&d);
}
