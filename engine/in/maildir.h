/*
 * maildir: a Maildir / Maildir++ message store with stable IMAP UIDs.
 *
 * Layout: a user's store root is a maildir (tmp/ new/ cur/) that is INBOX;
 * folder "A.B" is the maildir root/.A.B (Maildir++). Flags live in the
 * filename info ":2,<letters>" in ASCII order (D F R S T), so other Maildir
 * tools (Dovecot, mutt, fetchmail's MDAs) can share the store.
 *
 * UIDs: each maildir has a "ringmail-uidlist" file:
 *	1 V<uidvalidity> N<uidnext>
 *	<uid> <base filename>
 *	...
 * where the base filename is the name without its ":2," info. It is rewritten
 * atomically (write ringmail-uidlist.tmp, fsync, rename) while holding
 * flock() on "ringmail-uidlist.lock", so concurrent sessions and restarts
 * see the same UIDs.
 *
 * Delivery is split into open / write / sync / commit / syncdir steps so an
 * io_uring caller can drive each one; maildir_deliver() chains them
 * blocking.
 *
 * Owns: struct maildir_box and its message array. Must not touch: sockets,
 * TLS, Redis, auth. Worker-local, not thread-safe (different processes are
 * fine: see the lock above).
 */
#ifndef ENGINE_IN_MAILDIR_H
#define ENGINE_IN_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

/* Longest mailbox name accepted from a client (bytes). */
#define MAILDIR_NAME_MAX	200
/* Longest path built by this module. */
#define MAILDIR_PATH_MAX	1024

/* Message flags; the letter is the Maildir info character. */
#define MAILDIR_F_DRAFT		0x01u	/* D */
#define MAILDIR_F_FLAGGED	0x02u	/* F */
#define MAILDIR_F_ANSWERED	0x04u	/* R */
#define MAILDIR_F_SEEN		0x08u	/* S */
#define MAILDIR_F_DELETED	0x10u	/* T (trashed) */
#define MAILDIR_F_ALL		0x1fu

struct maildir_msg {
	uint32_t	 uid;
	unsigned	 flags;		/* MAILDIR_F_* */
	bool		 recent;	/* in new/ when the box was opened */
	bool		 gone;		/* vanished at the last rescan */
	bool		 seen_scan;	/* scratch for rescans */
	char		*base;		/* owns: filename without ":2," info */
	char		*name;		/* owns: "new/<file>" or "cur/<file>" */
	uint64_t	 size;		/* RFC 822 size with CRLF line ends;
					 * 0 = not known yet (see
					 * maildir_msg_size) */
	int64_t		 mtime;		/* internal date, seconds since epoch */
};

struct maildir_box {
	char			*path;		/* owns: the maildir */
	bool			 rw;		/* may move new->cur, set
						 * flags, unlink */
	uint32_t		 uidvalidity;
	uint32_t		 uidnext;
	struct maildir_msg	*msgs;		/* owns; sorted by uid */
	size_t			 nmsg;
	size_t			 cap;
};

/* An in-progress delivery; embed it, no heap. */
struct maildir_delivery {
	int	 fd;				/* -1 when closed */
	uint64_t size;				/* bytes written */
	uint64_t nbare_lf;			/* LFs not preceded by CR */
	char	 last;				/* last byte written */
	char	 dir[MAILDIR_PATH_MAX];		/* the maildir */
	char	 base[256];			/* unique base filename */
	char	 tmp_path[MAILDIR_PATH_MAX];
	char	 final_name[512];		/* "new/<base>,S=..,W=.." */
};

/*
 * Create path and its tmp/ new/ cur/ (mode 0700). Existing directories are
 * fine. 0 or -errno.
 */
int	maildir_create(const char *path);

/*
 * Is name an acceptable mailbox name? INBOX (any case) or printable ASCII,
 * 1..MAILDIR_NAME_MAX bytes, no '/', '\\', '*', '%', no leading or trailing
 * '.', no "..", no control characters. Such a name can never leave root.
 */
bool	maildir_name_valid(const char *name);

/* Is name INBOX (case-insensitive)? */
bool	maildir_name_is_inbox(const char *name);

/*
 * Map a mailbox name to its maildir under root: INBOX -> root, other ->
 * root/.<name>. 0, -EINVAL (bad name) or -ENAMETOOLONG.
 */
int	maildir_box_path(const char *root, const char *name, char *out,
	    size_t outlen);

/*
 * Call cb for INBOX and for each folder of root (a ".Name" directory that
 * holds cur/ and whose name is valid), in directory order. Stops and
 * returns cb's value when it is not 0; otherwise 0 or -errno.
 */
int	maildir_list(const char *root,
	    int (*cb)(const char *name, void *arg), void *arg);

/*
 * Open a maildir: scan new/ and cur/, load and update the uidlist.
 * rw: move new/ messages to cur/ (they become recent) and allow flag
 * changes and expunges. NULL on failure with *err = -errno.
 */
struct maildir_box *maildir_box_open(const char *path, bool rw, int *err);
void	maildir_box_free(struct maildir_box *box);

/*
 * Rescan after other sessions or deliveries changed the maildir: messages
 * that appeared get UIDs and are appended (*nnew counts them, may be NULL);
 * messages whose files vanished get gone = true and stay in the array until
 * the caller removes them with maildir_box_forget(). 0 or -errno.
 */
int	maildir_box_rescan(struct maildir_box *box, size_t *nnew);

/* Drop msgs[i] from the array (no disk change). */
void	maildir_box_forget(struct maildir_box *box, size_t i);

/* Index of the message with this uid, or -1. */
long	maildir_box_find_uid(const struct maildir_box *box, uint32_t uid);

/*
 * Read message i into out (appended), converting bare LF to CRLF, and fill
 * in its size. 0, -ENOENT (vanished), -EFBIG (over 64 MiB) or -errno.
 */
int	maildir_msg_read(struct maildir_box *box, size_t i, struct buf *out);

/* RFC 822 size of message i (reads the file once if the name lacks W=). */
int	maildir_msg_size(struct maildir_box *box, size_t i, uint64_t *size);

/*
 * Set message i's flags to flags (MAILDIR_F_*) by renaming it into cur/ with
 * the new info. A no-op when nothing changes. -EROFS on a read-only box.
 */
int	maildir_msg_set_flags(struct maildir_box *box, size_t i,
	    unsigned flags);

/*
 * Unlink message i's file (it stays in the array; the caller forgets it).
 * A file that is already gone is not an error. -EROFS on a read-only box.
 */
int	maildir_msg_unlink(struct maildir_box *box, size_t i);

/* Flag letters for a flags value, e.g. "FS" (out holds >= 6 bytes). */
void	maildir_flags_str(unsigned flags, char *out);
/* Flags from the info of a filename (after ":2,"); 0 when none. */
unsigned maildir_flags_parse(const char *filename);

/*
 * Delivery steps. open: create a unique tmp/ file under dir. write: append
 * bytes. sync: fsync and close the file. commit: rename it into new/ (or
 * into cur/ with flags when flags != 0 or to_cur). syncdir: fsync the
 * directory the file was renamed into. abort: close and unlink the tmp
 * file (safe after any step before commit). Each returns 0 or -errno.
 */
int	maildir_deliver_open(struct maildir_delivery *d, const char *dir);
int	maildir_deliver_write(struct maildir_delivery *d, const void *p,
	    size_t n);
int	maildir_deliver_sync(struct maildir_delivery *d);
/* Set the file's mtime (the IMAP internal date), e.g. to keep it on COPY.
 * Call between open and sync. 0 or -errno. */
int	maildir_deliver_set_time(struct maildir_delivery *d, int64_t mtime);
int	maildir_deliver_commit(struct maildir_delivery *d, bool to_cur,
	    unsigned flags);
int	maildir_deliver_syncdir(struct maildir_delivery *d);
void	maildir_deliver_abort(struct maildir_delivery *d);

/*
 * Blocking convenience: deliver one message into dir/new/. On success the
 * message is on disk (file and directory fsynced). 0 or -errno.
 */
int	maildir_deliver(const char *dir, const void *p, size_t n);

#endif
