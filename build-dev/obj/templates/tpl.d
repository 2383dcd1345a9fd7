build-dev/obj/templates/tpl.o: templates/tpl.c engine/lib/buf.h \
 templates/tpl.h
engine/lib/buf.h:
templates/tpl.h:
