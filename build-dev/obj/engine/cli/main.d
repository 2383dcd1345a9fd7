build-dev/obj/engine/cli/main.o: engine/cli/main.c engine/cli/cmd.h
engine/cli/cmd.h:
