build-dev/obj/engine/core/rconn.o: engine/core/rconn.c \
 engine/core/rconn.h engine/core/loop.h engine/lib/mono.h \
 engine/lib/log.h
engine/core/rconn.h:
engine/core/loop.h:
engine/lib/mono.h:
engine/lib/log.h:
