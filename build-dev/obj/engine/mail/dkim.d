build-dev/obj/engine/mail/dkim.o: engine/mail/dkim.c engine/lib/buf.h \
 engine/mail/dkim.h
engine/lib/buf.h:
engine/mail/dkim.h:
