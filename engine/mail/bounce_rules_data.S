/*
 * Embeds engine/mail/bounce-rules.txt (the built-in classify rules) as
 * read-only data; classify.c compiles it on first use. Assembled from the
 * repository root with -I. so the .incbin path resolves.
 */
	.section .rodata
	.global	classify_rules_data_start
	.type	classify_rules_data_start, @object
	.global	classify_rules_data_end
	.type	classify_rules_data_end, @object
	.balign	16
classify_rules_data_start:
	.incbin	"engine/mail/bounce-rules.txt"
classify_rules_data_end:
	.byte	0

	.section .note.GNU-stack,"",@progbits
