build-dev/obj/engine/cli/cmd_route.o: engine/cli/cmd_route.c \
 engine/lib/buf.h engine/core/config.h engine/core/dns.h \
 engine/core/loop.h engine/lib/mono.h engine/cli/cli.h engine/cli/cmd.h
engine/lib/buf.h:
engine/core/config.h:
engine/core/dns.h:
engine/core/loop.h:
engine/lib/mono.h:
engine/cli/cli.h:
engine/cli/cmd.h:
