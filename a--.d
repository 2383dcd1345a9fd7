-: engine/mail/dsn.h engine/mail/classify.h engine/mail/dsn.h
engine/mail/classify.h:
engine/mail/dsn.h:
