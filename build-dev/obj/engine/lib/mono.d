build-dev/obj/engine/lib/mono.o: engine/lib/mono.c engine/lib/mono.h
engine/lib/mono.h:
