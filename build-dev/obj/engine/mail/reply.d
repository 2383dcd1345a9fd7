build-dev/obj/engine/mail/reply.o: engine/mail/reply.c \
 engine/mail/reply.h
engine/mail/reply.h:
