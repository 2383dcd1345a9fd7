build-dev/obj/engine/cli/cmd_dkim.o: engine/cli/cmd_dkim.c \
 engine/lib/buf.h engine/mail/dkim.h engine/cli/cmd.h
engine/lib/buf.h:
engine/mail/dkim.h:
engine/cli/cmd.h:
