build-dev/obj/engine/cli/cmd_submit.o: engine/cli/cmd_submit.c \
 campaigns/campaign.h campaigns/csv.h engine/cli/cli.h \
 engine/core/config.h engine/cli/cmd.h engine/lib/buf.h engine/lib/mono.h \
 engine/mail/addr.h engine/out/fleet.h engine/out/schema.h \
 engine/out/suppress.h templates/tpl.h
campaigns/campaign.h:
campaigns/csv.h:
engine/cli/cli.h:
engine/core/config.h:
engine/cli/cmd.h:
engine/lib/buf.h:
engine/lib/mono.h:
engine/mail/addr.h:
engine/out/fleet.h:
engine/out/schema.h:
engine/out/suppress.h:
templates/tpl.h:
