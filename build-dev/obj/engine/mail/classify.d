build-dev/obj/engine/mail/classify.o: engine/mail/classify.c \
 engine/lib/log.h engine/mail/classify.h engine/mail/reply.h
engine/lib/log.h:
engine/mail/classify.h:
engine/mail/reply.h:
