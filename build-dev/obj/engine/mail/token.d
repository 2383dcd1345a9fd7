build-dev/obj/engine/mail/token.o: engine/mail/token.c engine/mail/addr.h \
 engine/mail/token.h
engine/mail/addr.h:
engine/mail/token.h:
