build-dev/obj/engine/mail/bounce_rules_data.o: \
 engine/mail/bounce_rules_data.S
