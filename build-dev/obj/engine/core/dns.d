build-dev/obj/engine/core/dns.o: engine/core/dns.c engine/lib/log.h \
 engine/lib/mono.h engine/core/dns.h engine/core/loop.h
engine/lib/log.h:
engine/lib/mono.h:
engine/core/dns.h:
engine/core/loop.h:
