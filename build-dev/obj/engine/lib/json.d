build-dev/obj/engine/lib/json.o: engine/lib/json.c engine/lib/buf.h \
 engine/lib/json.h
engine/lib/buf.h:
engine/lib/json.h:
