build-dev/obj/engine/in/mime.o: engine/in/mime.c engine/lib/buf.h \
 engine/in/mime.h
engine/lib/buf.h:
engine/in/mime.h:
