/*
 * cli: helpers shared by the subcommands: config loading with the
 * documented error format and exit status, and a synchronous Redis
 * connection for the short-lived commands (submit, status). Long-running
 * loops never use these: the worker talks to Redis through core/rconn.
 */
#ifndef ENGINE_CLI_CLI_H
#define ENGINE_CLI_CLI_H

#include <hiredis/hiredis.h>

#include "core/config.h"

/*
 * Load config from path (NULL: ./config.yaml when it exists, otherwise the
 * defaults), then apply the environment. Prints "FILE:LINE:COL: message"
 * and returns NULL on error (the caller exits with status 2).
 */
struct config *cli_config(const char *path);
/* Connect (5 s timeout), AUTH/SELECT as configured; NULL + message. */
redisContext *cli_redis(const struct config *cfg);
/* Run a command; NULL or an error reply prints a message and returns NULL. */
redisReply *cli_cmd(redisContext *rc, const char *fmt, ...);

#endif
