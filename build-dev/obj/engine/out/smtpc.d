build-dev/obj/engine/out/smtpc.o: engine/out/smtpc.c engine/lib/buf.h \
 engine/lib/log.h engine/mail/reply.h engine/out/smtpc.h
engine/lib/buf.h:
engine/lib/log.h:
engine/mail/reply.h:
engine/out/smtpc.h:
