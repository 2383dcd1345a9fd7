build-dev/obj/engine/cli/cmd_bounce.o: engine/cli/cmd_bounce.c \
 engine/lib/buf.h engine/mail/classify.h engine/mail/dsn.h \
 engine/cli/cmd.h
engine/lib/buf.h:
engine/mail/classify.h:
engine/mail/dsn.h:
engine/cli/cmd.h:
