build-dev/obj/engine/in/pop3d.o: engine/in/pop3d.c engine/lib/buf.h \
 engine/lib/log.h engine/in/auth.h engine/lib/mono.h engine/in/maildir.h \
 engine/in/pop3d.h engine/in/insess.h
engine/lib/buf.h:
engine/lib/log.h:
engine/in/auth.h:
engine/lib/mono.h:
engine/in/maildir.h:
engine/in/pop3d.h:
engine/in/insess.h:
