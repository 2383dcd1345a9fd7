build-dev/obj/engine/cli/cmd_events.o: engine/cli/cmd_events.c \
 engine/cli/cli.h engine/core/config.h engine/cli/cmd.h engine/lib/buf.h \
 engine/lib/json.h engine/out/schema.h
engine/cli/cli.h:
engine/core/config.h:
engine/cli/cmd.h:
engine/lib/buf.h:
engine/lib/json.h:
engine/out/schema.h:
