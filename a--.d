-: templates/tpl.h engine/lib/buf.h templates/tpl.h
engine/lib/buf.h:
templates/tpl.h:
