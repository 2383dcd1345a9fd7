build-dev/obj/engine/core/loop.o: engine/core/loop.c engine/core/loop.h \
 engine/lib/mono.h engine/lib/log.h
engine/core/loop.h:
engine/lib/mono.h:
engine/lib/log.h:
