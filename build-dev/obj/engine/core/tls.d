build-dev/obj/engine/core/tls.o: engine/core/tls.c engine/lib/buf.h \
 engine/core/tls.h
engine/lib/buf.h:
engine/core/tls.h:
