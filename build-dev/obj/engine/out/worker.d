build-dev/obj/engine/out/worker.o: engine/out/worker.c \
 engine/core/config.h engine/core/dns.h engine/core/loop.h \
 engine/lib/mono.h engine/core/tls.h engine/lib/buf.h engine/core/rconn.h \
 engine/lib/log.h engine/lib/strset.h engine/mail/classify.h \
 engine/mail/dkim.h engine/mail/token.h engine/mail/addr.h \
 engine/mail/msg.h engine/out/outcome.h engine/out/smtpc.h \
 engine/mail/reply.h engine/out/retry.h engine/out/schema.h \
 engine/out/worker.h templates/tpl.h
engine/core/config.h:
engine/core/dns.h:
engine/core/loop.h:
engine/lib/mono.h:
engine/core/tls.h:
engine/lib/buf.h:
engine/core/rconn.h:
engine/lib/log.h:
engine/lib/strset.h:
engine/mail/classify.h:
engine/mail/dkim.h:
engine/mail/token.h:
engine/mail/addr.h:
engine/mail/msg.h:
engine/out/outcome.h:
engine/out/smtpc.h:
engine/mail/reply.h:
engine/out/retry.h:
engine/out/schema.h:
engine/out/worker.h:
templates/tpl.h:
