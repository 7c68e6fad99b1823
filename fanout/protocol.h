/*
 * protocol.h — the client side of the WebSocket protocol: parsing what a
 * client sends (jansson), and the small JSON writer every message uses.
 * Pure functions, unit tested and fuzzed (fuzz_protocol.c).
 */
#ifndef PROTOCOL_H
#define PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum client_msg_type {
	CMSG_SUBSCRIBE, CMSG_UNSUBSCRIBE, CMSG_PING, CMSG_AUTH
};

#define PING_ID_MAX		256
#define TOKEN_MAX		4096

struct client_msg {
	enum client_msg_type type;
	int64_t		poll;			/* subscribe, unsubscribe */
	bool		has_poll;		/* a valid poll id was found (for errors) */
	bool		has_version;
	int64_t		version;		/* subscribe: the last version the client applied */
	char		ping_id[PING_ID_MAX + 1];	/* ping: the id, as JSON text */
	char		token[TOKEN_MAX + 1];		/* auth */
};

/*
 * Parses one client message.  Returns 0, or -1 with *code ("bad_request")
 * and *why (a static message) set.  When the message names a valid poll id
 * even though it is otherwise bad, has_poll is set so the error can carry it.
 */
int			client_msg_parse(const char *buf, size_t len, struct client_msg *m,
							 const char **why);

/* a growing-in-place output buffer with a fixed capacity; overflow is sticky */
struct jbuf {
	char	   *p;
	size_t		len, cap;
	bool		overflow;
};

void		jb_raw(struct jbuf *b, const char *s, size_t n);
void		jb_str(struct jbuf *b, const char *s);				/* literal text */
void		jb_fmt(struct jbuf *b, const char *fmt,...) __attribute__((format(printf, 2, 3)));
void		jb_json_string(struct jbuf *b, const char *s);		/* "quoted and escaped" */

/* {"type":"error",...}; poll < 0: no poll member */
size_t		render_error(char *out, size_t cap, const char *code, const char *message,
						 int64_t poll);

#endif
