build-dev/obj/engine/core/config.o: engine/core/config.c engine/lib/log.h \
 engine/core/config.h
engine/lib/log.h:
engine/core/config.h:
