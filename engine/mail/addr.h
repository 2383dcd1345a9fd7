/*
 * addr: RFC 5321 mailbox validation for envelope addresses.
 *
 * Accepts Local-part@Domain with a dot-atom or quoted-string local part
 * (RFC 5321 4.1.2), a domain of LDH labels or an address literal, lengths
 * within RFC 5321 4.5.3.1 (local part 64, domain 255, path 256). UTF-8 in
 * either part is accepted and flagged (needs SMTPUTF8). Pure functions.
 */
#ifndef ENGINE_MAIL_ADDR_H
#define ENGINE_MAIL_ADDR_H

#include <stdbool.h>
#include <stddef.h>

/*
 * 0 when s[0..len) is a valid mailbox; -EINVAL otherwise with *why set to
 * a static reason ("missing @", "domain label too long", ...).
 * *utf8 (may be NULL) is set when the address needs SMTPUTF8.
 */
int	addr_validate(const char *s, size_t len, bool *utf8, const char **why);
/* Pointer to the domain part (after the last '@'), or NULL. */
const char *addr_domain(const char *s, size_t len, size_t *domlen);

#endif
