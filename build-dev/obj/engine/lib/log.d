build-dev/obj/engine/lib/log.o: engine/lib/log.c engine/lib/log.h
engine/lib/log.h:
