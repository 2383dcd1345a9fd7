build-dev/obj/engine/out/fleet.o: engine/out/fleet.c engine/out/fleet.h \
 engine/out/schema.h
engine/out/fleet.h:
engine/out/schema.h:
