build-dev/obj/engine/cli/cmd_status.o: engine/cli/cmd_status.c \
 engine/cli/cli.h engine/core/config.h engine/cli/cmd.h engine/lib/mono.h \
 engine/out/fleet.h engine/out/schema.h
engine/cli/cli.h:
engine/core/config.h:
engine/cli/cmd.h:
engine/lib/mono.h:
engine/out/fleet.h:
engine/out/schema.h:
