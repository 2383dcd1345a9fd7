/*
 * cmd: the subcommands of the ringmail binary. Each lives in its own
 * engine/cli/cmd_<name>.c, takes argv without the program name (argv[0]
 * is the subcommand) and returns the process exit status:
 * 0 ok, 1 operational failure, 2 usage or configuration error.
 */
#ifndef ENGINE_CLI_CMD_H
#define ENGINE_CLI_CMD_H

int	cmd_submit(int argc, char **argv);
int	cmd_worker(int argc, char **argv);
int	cmd_status(int argc, char **argv);
int	cmd_explain(int argc, char **argv);
int	cmd_bounce(int argc, char **argv);
int	cmd_passwd(int argc, char **argv);
int	cmd_route(int argc, char **argv);
int	cmd_campaign(int argc, char **argv);
int	cmd_suppress(int argc, char **argv);
int	cmd_events(int argc, char **argv);
int	cmd_dkim(int argc, char **argv);
int	cmd_inbound(int argc, char **argv);
int	cmd_unsub_server(int argc, char **argv);
int	cmd_unsub_token(int argc, char **argv);
int	cmd_render(int argc, char **argv);

#endif
