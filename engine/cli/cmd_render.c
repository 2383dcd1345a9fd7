/* placeholder, replaced below */
#include "cli/cmd.h"

int
cmd_render(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return 2;
}
