build-dev/obj/engine/out/outcome.o: engine/out/outcome.c \
 engine/out/outcome.h engine/out/smtpc.h engine/lib/buf.h \
 engine/mail/reply.h
engine/out/outcome.h:
engine/out/smtpc.h:
engine/lib/buf.h:
engine/mail/reply.h:
