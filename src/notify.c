/* SPDX-License-Identifier: MIT */
/* sd_notify(3): one datagram per message to the AF_UNIX socket in $NOTIFY_SOCKET. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "notify.h"

bool uc_notify_wanted(void)
{
	const char *e = getenv("NOTIFY_SOCKET");

	return e && (e[0] == '/' || e[0] == '@');
}

int uc_notify(const char *state)
{
	const char *e = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n, len = strlen(state);
	socklen_t salen;
	int fd, ret = 0;

	if (!uc_notify_wanted())
		return 0;
	n = strlen(e);
	if (n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, e, n);
	/* "@name": an abstract socket, its name starts with a NUL byte */
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = 0;
	salen = offsetof(struct sockaddr_un, sun_path) + n;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sendto(fd, state, len, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) != (ssize_t)len)
		ret = -errno;
	close(fd);
	return ret;
}

int uc_notifyf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return uc_notify(buf);
}
