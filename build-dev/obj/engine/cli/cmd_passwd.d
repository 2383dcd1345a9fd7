build-dev/obj/engine/cli/cmd_passwd.o: engine/cli/cmd_passwd.c \
 engine/in/auth.h engine/lib/mono.h engine/cli/cmd.h
engine/in/auth.h:
engine/lib/mono.h:
engine/cli/cmd.h:
