build-dev/obj/engine/mail/mime_parse.o: engine/mail/mime_parse.c \
 engine/mail/mime_parse.h
engine/mail/mime_parse.h:
