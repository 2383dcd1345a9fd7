/*
 * tls_sink: a discard SMTP receiver with STARTTLS for bench/bench_tls.py,
 * in the spirit of Postfix smtp-sink (which has no TLS): one thread per
 * connection, blocking I/O, OpenSSL with its default server session
 * cache and TLS 1.3 tickets, so a client can resume. It accepts every
 * transaction and stores nothing; it exists so the receiver costs little
 * next to the senders being measured (a Postfix smtpd costs ~1 ms of CPU
 * per message here, more than either sender).
 *
 * Offers PIPELINING, 8BITMIME, SIZE and STARTTLS (not CHUNKING). Lines
 * are bounded (LINE_MAX bytes); an overlong line ends the session.
 *
 * Usage: tls_sink PORT CERT KEY STATSFILE
 * Prints "READY PORT" once listening. Every 200 ms it rewrites STATSFILE
 * with one JSON object: connections, messages, handshakes, resumed.
 * Stops on SIGTERM / SIGINT (writing the stats once more).
 * Not part of ringmail: built by bench/bench_tls.py with cc.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define SINK_BUF	65536
#define SINK_LINE_MAX	4096

static atomic_ulong sink_nconn, sink_nmsg, sink_nhs, sink_nresumed;
static volatile sig_atomic_t sink_stop;
static SSL_CTX *sink_ctx;
static const char *sink_stats;

struct sink_conn {
	int	 fd;
	SSL	*ssl;
	char	 in[SINK_BUF];
	size_t	 inlen;
	char	 out[8192];
	size_t	 outlen;
};

static int
sink_read(struct sink_conn *c)
{
	ssize_t	n;

	if (c->inlen == sizeof(c->in))
		return -1;
	if (c->ssl != NULL)
		n = SSL_read(c->ssl, c->in + c->inlen,
		    (int)(sizeof(c->in) - c->inlen));
	else
		n = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
	if (n <= 0)
		return -1;
	c->inlen += (size_t)n;
	return 0;
}

static int
sink_flush(struct sink_conn *c)
{
	size_t	off = 0;
	ssize_t	n;

	while (off < c->outlen) {
		if (c->ssl != NULL)
			n = SSL_write(c->ssl, c->out + off,
			    (int)(c->outlen - off));
		else
			n = write(c->fd, c->out + off, c->outlen - off);
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	c->outlen = 0;
	return 0;
}

static int
sink_reply(struct sink_conn *c, const char *s)
{
	size_t	l = strlen(s);

	if (c->outlen + l > sizeof(c->out) && sink_flush(c) != 0)
		return -1;
	memcpy(c->out + c->outlen, s, l);
	c->outlen += l;
	return 0;
}

static void
sink_consume(struct sink_conn *c, size_t n)
{
	memmove(c->in, c->in + n, c->inlen - n);
	c->inlen -= n;
}

/*
 * Skip the message body up to and including CRLF.CRLF; the body starts
 * at a line start, as if after a CRLF (so ".CRLF" alone ends it).
 */
static int
sink_data(struct sink_conn *c)
{
	static const char	 pat[] = "\r\n.\r\n";
	size_t			 s = 2, i;

	for (;;) {
		for (i = 0; i < c->inlen; i++) {
			char	b = c->in[i];

			if (b == pat[s])
				s++;
			else
				s = b == '\r' ? 1 : 0;
			if (s == 5) {
				sink_consume(c, i + 1);
				return 0;
			}
		}
		c->inlen = 0;
		if (sink_read(c) != 0)
			return -1;
	}
}

static void *
sink_serve(void *arg)
{
	struct sink_conn	*c = arg;
	int			 one = 1;

	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	atomic_fetch_add(&sink_nconn, 1);
	if (sink_reply(c, "220 tls-sink ESMTP\r\n") != 0 || sink_flush(c) != 0)
		goto out;
	for (;;) {
		char	*eol;
		char	 line[SINK_LINE_MAX];
		size_t	 l;

		while ((eol = memchr(c->in, '\n', c->inlen)) == NULL) {
			if (c->inlen >= SINK_LINE_MAX)
				goto out;
			/* Pipelined replies go out once the input is used. */
			if (c->outlen > 0 && sink_flush(c) != 0)
				goto out;
			if (sink_read(c) != 0)
				goto out;
		}
		l = (size_t)(eol - c->in) + 1;
		if (l >= SINK_LINE_MAX)
			goto out;
		memcpy(line, c->in, l);
		line[l] = '\0';
		sink_consume(c, l);
		if (strncasecmp(line, "EHLO", 4) == 0) {
			sink_reply(c, c->ssl == NULL ?
			    "250-tls-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
			    "250-SIZE 0\r\n250 STARTTLS\r\n" :
			    "250-tls-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
			    "250 SIZE 0\r\n");
		} else if (strncasecmp(line, "HELO", 4) == 0) {
			sink_reply(c, "250 tls-sink\r\n");
		} else if (strncasecmp(line, "STARTTLS", 8) == 0 &&
		    c->ssl == NULL) {
			if (sink_reply(c, "220 2.0.0 go ahead\r\n") != 0 ||
			    sink_flush(c) != 0)
				goto out;
			c->inlen = 0;	/* RFC 3207: discard what came before */
			if ((c->ssl = SSL_new(sink_ctx)) == NULL ||
			    SSL_set_fd(c->ssl, c->fd) != 1 ||
			    SSL_accept(c->ssl) != 1)
				goto out;
			atomic_fetch_add(&sink_nhs, 1);
			if (SSL_session_reused(c->ssl))
				atomic_fetch_add(&sink_nresumed, 1);
		} else if (strncasecmp(line, "MAIL", 4) == 0 ||
		    strncasecmp(line, "RCPT", 4) == 0 ||
		    strncasecmp(line, "RSET", 4) == 0 ||
		    strncasecmp(line, "NOOP", 4) == 0) {
			sink_reply(c, "250 2.0.0 Ok\r\n");
		} else if (strncasecmp(line, "DATA", 4) == 0) {
			if (sink_reply(c, "354 End data with <CR><LF>.<CR><LF>"
			    "\r\n") != 0 || sink_flush(c) != 0 ||
			    sink_data(c) != 0)
				goto out;
			atomic_fetch_add(&sink_nmsg, 1);
			sink_reply(c, "250 2.0.0 Ok: queued\r\n");
		} else if (strncasecmp(line, "QUIT", 4) == 0) {
			sink_reply(c, "221 2.0.0 Bye\r\n");
			sink_flush(c);
			goto out;
		} else {
			sink_reply(c, "502 5.5.2 Error: command not recognized"
			    "\r\n");
		}
	}
out:
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	close(c->fd);
	free(c);
	return NULL;
}

static void
sink_write_stats(void)
{
	char	 tmp[4096];
	FILE	*f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", sink_stats);
	if ((f = fopen(tmp, "w")) == NULL)
		return;
	fprintf(f, "{\"connections\": %lu, \"messages\": %lu, "
	    "\"handshakes\": %lu, \"resumed\": %lu}\n",
	    atomic_load(&sink_nconn), atomic_load(&sink_nmsg),
	    atomic_load(&sink_nhs), atomic_load(&sink_nresumed));
	fclose(f);
	rename(tmp, sink_stats);
}

static void *
sink_stats_loop(void *arg)
{
	struct timespec	ts = { 0, 200 * 1000 * 1000 };

	(void)arg;
	while (!sink_stop) {
		sink_write_stats();
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void
sink_on_signal(int sig)
{
	(void)sig;
	sink_stop = 1;
}

int
main(int argc, char **argv)
{
	struct sockaddr_in	 sa;
	struct sigaction	 act;
	pthread_t		 th;
	pthread_attr_t		 attr;
	int			 lfd, one = 1;

	if (argc != 5) {
		fprintf(stderr, "usage: tls_sink PORT CERT KEY STATSFILE\n");
		return 2;
	}
	sink_stats = argv[4];
	signal(SIGPIPE, SIG_IGN);
	memset(&act, 0, sizeof(act));
	act.sa_handler = sink_on_signal;	/* no SA_RESTART: accept ends */
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	if ((sink_ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    SSL_CTX_use_certificate_chain_file(sink_ctx, argv[2]) != 1 ||
	    SSL_CTX_use_PrivateKey_file(sink_ctx, argv[3],
	    SSL_FILETYPE_PEM) != 1) {
		ERR_print_errors_fp(stderr);
		return 1;
	}
	SSL_CTX_set_session_id_context(sink_ctx, (const unsigned char *)"s",
	    1);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)atoi(argv[1]));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(lfd, 1024) != 0) {
		perror("tls_sink: bind/listen");
		return 1;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	pthread_create(&th, &attr, sink_stats_loop, NULL);
	printf("READY %s\n", argv[1]);
	fflush(stdout);
	while (!sink_stop) {
		struct sink_conn	*c;
		int			 fd = accept(lfd, NULL, NULL);

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			continue;
		}
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		if (pthread_create(&th, &attr, sink_serve, c) != 0) {
			close(fd);
			free(c);
		}
	}
	sink_write_stats();
	return 0;
}
