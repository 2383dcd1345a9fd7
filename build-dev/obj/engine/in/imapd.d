build-dev/obj/engine/in/imapd.o: engine/in/imapd.c engine/lib/buf.h \
 engine/lib/log.h engine/in/auth.h engine/lib/mono.h engine/in/imapd.h \
 engine/in/insess.h engine/in/maildir.h engine/in/mime.h
engine/lib/buf.h:
engine/lib/log.h:
engine/in/auth.h:
engine/lib/mono.h:
engine/in/imapd.h:
engine/in/insess.h:
engine/in/maildir.h:
engine/in/mime.h:
