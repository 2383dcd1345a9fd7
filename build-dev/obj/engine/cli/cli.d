build-dev/obj/engine/cli/cli.o: engine/cli/cli.c engine/cli/cli.h \
 engine/core/config.h engine/lib/log.h
engine/cli/cli.h:
engine/core/config.h:
engine/lib/log.h:
