build-dev/obj/engine/lib/buf.o: engine/lib/buf.c engine/lib/buf.h
engine/lib/buf.h:
