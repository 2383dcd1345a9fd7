build-dev/obj/engine/in/auth.o: engine/in/auth.c engine/lib/mono.h \
 engine/in/auth.h
engine/lib/mono.h:
engine/in/auth.h:
