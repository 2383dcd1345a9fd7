build-dev/obj/engine/mail/msg.o: engine/mail/msg.c engine/lib/buf.h \
 engine/mail/msg.h
engine/lib/buf.h:
engine/mail/msg.h:
