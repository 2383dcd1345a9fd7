build-dev/obj/engine/lib/strset.o: engine/lib/strset.c \
 engine/lib/strset.h
engine/lib/strset.h:
