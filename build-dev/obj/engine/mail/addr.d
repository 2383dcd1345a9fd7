build-dev/obj/engine/mail/addr.o: engine/mail/addr.c engine/mail/addr.h
engine/mail/addr.h:
