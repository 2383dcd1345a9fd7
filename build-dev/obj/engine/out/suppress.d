build-dev/obj/engine/out/suppress.o: engine/out/suppress.c \
 engine/lib/json.h engine/lib/buf.h engine/out/schema.h \
 engine/out/suppress.h
engine/lib/json.h:
engine/lib/buf.h:
engine/out/schema.h:
engine/out/suppress.h:
