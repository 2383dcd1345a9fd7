build-dev/obj/engine/mail/dsn.o: engine/mail/dsn.c engine/mail/classify.h \
 engine/mail/dsn.h engine/mail/mime_parse.h
engine/mail/classify.h:
engine/mail/dsn.h:
engine/mail/mime_parse.h:
