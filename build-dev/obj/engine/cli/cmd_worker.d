build-dev/obj/engine/cli/cmd_worker.o: engine/cli/cmd_worker.c \
 engine/cli/cli.h engine/core/config.h engine/cli/cmd.h engine/lib/log.h \
 engine/out/worker.h
engine/cli/cli.h:
engine/core/config.h:
engine/cli/cmd.h:
engine/lib/log.h:
engine/out/worker.h:
