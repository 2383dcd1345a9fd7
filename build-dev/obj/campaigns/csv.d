build-dev/obj/campaigns/csv.o: campaigns/csv.c campaigns/csv.h
campaigns/csv.h:
