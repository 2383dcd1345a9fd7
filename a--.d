-: engine/mail/classify.h engine/mail/classify.h
engine/mail/classify.h:
