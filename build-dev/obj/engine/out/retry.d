build-dev/obj/engine/out/retry.o: engine/out/retry.c engine/out/retry.h \
 engine/core/config.h
engine/out/retry.h:
engine/core/config.h:
