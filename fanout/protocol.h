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
	CMSG_SUBSCRIBE, CMSG_UNSUBSCRIBE, CMSG_PING, CMSG_AUTH, CMSG_VOTE, CMSG_RETRACT
};

#define PING_ID_MAX		256
#define TOKEN_MAX		4096
#define REF_MAX_CHARS	64
#define REF_MAX			(REF_MAX_CHARS * 4)	/* bytes of UTF-8 */
#define BALLOT_MAX		64		/* options in one ballot (a poll has at most 64) */

/* what a vote chooses: "option" (single) or "options" (a list) */
struct ballot {
	bool		single;
	int			n;
	int			options[BALLOT_MAX];
};

struct client_msg {
	enum client_msg_type type;
	int64_t		poll;			/* subscribe, unsubscribe */
	bool		has_poll;		/* a valid poll id was found (for errors) */
	bool		has_version;
	int64_t		version;		/* subscribe: the last version the client applied */
	char		ping_id[PING_ID_MAX + 1];	/* ping: the id, as JSON text */
	char		token[TOKEN_MAX + 1];		/* auth */
	/* vote, retract */
	bool		has_ref;
	char		ref[REF_MAX + 1];
	struct ballot ballot;		/* vote */
	const char *bad_vote;		/* set: well formed, but no ballot can be this (why) */
};

/*
 * Parses one client message.  Returns 0, or -1 with *code ("bad_request")
 * and *why (a static message) set.  When the message names a valid poll id
 * even though it is otherwise bad, has_poll is set so the error can carry it.
 */
int			client_msg_parse(const char *buf, size_t len, struct client_msg *m,
							 const char **why);

/*
 * The body of POST /polls/ID/vote: {"option":2} or {"options":[1,3]}, and
 * "ref" as in a vote message.  Returns 0 (check m->bad_vote), or -1 with
 * *why set (bad_request).
 */
int			vote_body_parse(const char *buf, size_t len, struct client_msg *m,
							const char **why);
/* the ballot as poll.cast_vote's text form: "2" or "{1,3}" */
size_t		ballot_text(const struct ballot *b, char *out, size_t cap);

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
/* the same, with "ref" when ref is not NULL */
size_t		render_error_ref(char *out, size_t cap, const char *code, const char *message,
							 int64_t poll, const char *ref);

#endif
