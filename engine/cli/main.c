/* ringmail: command-line entry point; dispatches to subcommands. */
#include <stdio.h>
#include <string.h>

static void
usage(FILE *f)
{
	fprintf(f, "usage: ringmail COMMAND [ARGS]\n"
	    "commands: submit worker status\n");
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "ringmail: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
