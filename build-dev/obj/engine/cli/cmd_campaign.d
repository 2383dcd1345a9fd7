build-dev/obj/engine/cli/cmd_campaign.o: engine/cli/cmd_campaign.c \
 engine/cli/cli.h engine/core/config.h engine/cli/cmd.h engine/lib/mono.h \
 engine/out/schema.h
engine/cli/cli.h:
engine/core/config.h:
engine/cli/cmd.h:
engine/lib/mono.h:
engine/out/schema.h:
