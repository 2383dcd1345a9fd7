build-dev/obj/engine/in/maildir.o: engine/in/maildir.c engine/lib/buf.h \
 engine/lib/log.h engine/in/maildir.h
engine/lib/buf.h:
engine/lib/log.h:
engine/in/maildir.h:
