build-dev/obj/campaigns/campaign.o: campaigns/campaign.c \
 engine/mail/addr.h campaigns/campaign.h
engine/mail/addr.h:
campaigns/campaign.h:
