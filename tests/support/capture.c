// SPDX-License-Identifier: MIT
#include "capture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int saved_fd = -1;
static FILE *tmp;

void capture_stderr_begin(void)
{
	fflush(stderr);
	tmp = tmpfile();
	if (!tmp)
		abort();
	saved_fd = dup(STDERR_FILENO);
	dup2(fileno(tmp), STDERR_FILENO);
}

char *capture_stderr_end(void)
{
	long n;
	char *buf;

	fflush(stderr);
	dup2(saved_fd, STDERR_FILENO);
	close(saved_fd);
	saved_fd = -1;
	n = ftell(tmp);
	buf = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
	if (!buf)
		abort();
	rewind(tmp);
	if (n > 0 && fread(buf, 1, (size_t)n, tmp) != (size_t)n)
		abort();
	fclose(tmp);
	tmp = NULL;
	return buf;
}

unsigned count_occurrences(const char *s, const char *needle)
{
	unsigned n = 0;

	for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}
