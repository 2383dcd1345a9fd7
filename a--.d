-: engine/mail/mime_parse.h engine/mail/mime_parse.h
engine/mail/mime_parse.h:
