build-dev/obj/engine/cli/cmd_suppress.o: engine/cli/cmd_suppress.c \
 campaigns/csv.h engine/cli/cli.h engine/core/config.h engine/cli/cmd.h \
 engine/lib/buf.h engine/lib/json.h engine/lib/mono.h engine/mail/addr.h \
 engine/out/fleet.h engine/out/schema.h engine/out/suppress.h
campaigns/csv.h:
engine/cli/cli.h:
engine/core/config.h:
engine/cli/cmd.h:
engine/lib/buf.h:
engine/lib/json.h:
engine/lib/mono.h:
engine/mail/addr.h:
engine/out/fleet.h:
engine/out/schema.h:
engine/out/suppress.h:
