// SPDX-License-Identifier: MIT
/*
 * hutch's front end (exec, cp, stop, ls and the state directory) against
 * a fake VM: a process that holds the VM directory's lock as a VMM does
 * and answers on its vsock socket as a hostile agent would.  No KVM: the
 * host side must hold up whatever the guest sends.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent_codec.h"
#include "agent_proto.h"
#include "tests/support/run.h"
#include "vmm/cli/state_dir.h"

#define ESC "\x1b"

static char state[] = "/tmp/hutch-session-XXXXXX";
static pid_t fakes[4];
static unsigned nfakes;

static void setup(void)
{
	strcpy(state, "/tmp/hutch-session-XXXXXX");
	cr_assert(mkdtemp(state));
	setenv("HUTCH_STATE_DIR", state, 1);
	umask(022);
	nfakes = 0;
}

static void teardown(void)
{
	char cmd[128];

	/* Each fake is a process group: it and its connections. */
	for (unsigned i = 0; i < nfakes; i++) {
		kill(-fakes[i], SIGKILL);
		kill(fakes[i], SIGKILL);
		waitpid(fakes[i], NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "chmod -R u+rwx %s; rm -rf %s", state,
		 state);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(session, .init = setup, .fini = teardown, .timeout = 90);

/* ---- a fake agent ---- */

static void put_frame(int fd, uint16_t type, uint32_t id, const void *p,
		      uint32_t len)
{
	struct agent_hdr h = {.len = len, .type = type, .id = id};
	uint8_t hdr[AGENT_HDR_LEN];

	agent_hdr_encode(hdr, &h);
	if (write(fd, hdr, sizeof(hdr)) != sizeof(hdr) ||
	    (len && write(fd, p, len) != (ssize_t)len))
		_exit(9);
}

static bool read_n(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;

	while (n) {
		ssize_t k = read(fd, p, n);

		if (k <= 0)
			return false;
		p += k;
		n -= (size_t)k;
	}
	return true;
}

/* The next frame from the client; false at EOF. */
static bool get_frame(int fd, struct agent_hdr *h, uint8_t *p, size_t cap)
{
	uint8_t hdr[AGENT_HDR_LEN];

	if (!read_n(fd, hdr, sizeof(hdr)))
		return false;
	agent_hdr_decode(h, hdr);
	if (h->len > cap)
		_exit(8);
	return read_n(fd, p, h->len);
}

/* A body from the agent's own codec as one frame. */
static void put_msg(int fd, uint16_t type, uint32_t id, struct agent_wbuf *b)
{
	if (b->oom)
		_exit(9);
	put_frame(fd, type, id, b->p, (uint32_t)b->len);
	agent_wbuf_free(b);
}

static void put_error(int fd, uint32_t id, int err, const char *msg)
{
	struct agent_wbuf b = {0};

	agent_enc_error(&b, err, msg, strlen(msg));
	put_msg(fd, AGENT_ERROR, id, &b);
}

static void put_file_ok(int fd, uint32_t id, uint32_t mode, uint64_t size)
{
	struct agent_wbuf b = {0};

	agent_enc_get_ok(&b, mode, size);
	put_msg(fd, AGENT_FILE_OK, id, &b);
}

/* What the agent does with one connection, after the handshake. */
enum scenario {
	SC_SILENT,	/* answers nothing, reads until EOF */
	SC_EXEC_STALL,	/* STARTED, then nothing: never an EXIT */
	SC_EXEC_ERROR,	/* EXEC gets an ERROR full of terminal escapes */
	SC_GET_SETUID,	/* GET: a file of mode 04755 */
	SC_GET_TOO_BIG, /* GET: announces 10 bytes, sends 4 MiB */
	SC_GET_ERROR,	/* GET: an ERROR with escapes */
};

static const char evil_msg[] = ESC "]0;pwned"
				   "\x07" ESC "[2J" ESC "[1A"
				   "\r\nhutch: all good\x9b"
				   "31m\xff\xfe";

/* Frames the agent received go to <state>/<vm>.frames: "type id arg". */
static void agent_conn(int fd, enum scenario sc, FILE *log)
{
	static uint8_t p[AGENT_MAX_PAYLOAD];
	struct agent_hdr h;

	while (get_frame(fd, &h, p, sizeof(p))) {
		fprintf(log, "%u %u %u\n", h.type, h.id,
			h.len >= 4 ? agent_get_le32(p) : 0);
		fflush(log);
		if (h.type == AGENT_EXEC && sc == SC_EXEC_STALL) {
			struct agent_wbuf b = {0};

			agent_enc_started(&b, 1);
			put_msg(fd, AGENT_STARTED, h.id, &b);
		} else if (h.type == AGENT_EXEC && sc == SC_EXEC_ERROR) {
			put_error(fd, h.id, ENOENT, evil_msg);
		} else if (h.type == AGENT_GET && sc == SC_GET_SETUID) {
			put_file_ok(fd, h.id, 04755, 5);
			put_frame(fd, AGENT_DATA, h.id, "hello", 5);
			put_frame(fd, AGENT_DATA_END, h.id, NULL, 0);
		} else if (h.type == AGENT_GET && sc == SC_GET_TOO_BIG) {
			static uint8_t chunk[AGENT_MAX_CHUNK];

			put_file_ok(fd, h.id, 0644, 10);
			for (int i = 0; i < 64; i++)
				put_frame(fd, AGENT_DATA, h.id, chunk,
					  sizeof(chunk));
			put_frame(fd, AGENT_DATA_END, h.id, NULL, 0);
		} else if (h.type == AGENT_GET && sc == SC_GET_ERROR) {
			put_error(fd, h.id, EIO, evil_msg);
		}
	}
}

/*
 * A fake VM called name: a process holding NAME/lock, listening on
 * NAME/vsock.sock.  answer: reply "OK" to CONNECT (else never reply);
 * stubborn: ignore SIGTERM.  Returns its pid once it listens.
 */
static pid_t fake_vm(const char *name, enum scenario sc, bool answer,
		     bool stubborn)
{
	char dir[256], path[300];
	int ready[2];
	pid_t pid;
	char b;

	snprintf(dir, sizeof(dir), "%s/%s", state, name);
	cr_assert_eq(mkdir(dir, 0700), 0);
	cr_assert_eq(pipe(ready), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		int dfd = open(dir, O_RDONLY | O_DIRECTORY), lfd, s;
		FILE *log;

		setpgid(0, 0);
		if (stubborn)
			signal(SIGTERM, SIG_IGN);
		signal(SIGCHLD, SIG_IGN);
		if (dfd < 0 || state_lock_take(dfd) < 0)
			_exit(7);
		/* As the VMM does (for people; hutch must not trust it). */
		snprintf(path, sizeof(path), "%s/pid", dir);
		log = fopen(path, "w");
		if (!log)
			_exit(7);
		fprintf(log, "%ld\n", (long)getpid());
		fclose(log);
		snprintf(path, sizeof(path), "%s.frames", dir);
		log = fopen(path, "a");
		if (strlen(dir) + sizeof("/vsock.sock") > sizeof(sa.sun_path))
			_exit(7);
		strcpy(sa.sun_path, dir);
		strcat(sa.sun_path, "/vsock.sock");
		lfd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (!log || lfd < 0 ||
		    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
		    listen(lfd, 16))
			_exit(7);
		if (write(ready[1], "r", 1) != 1)
			_exit(7);
		while ((s = accept(lfd, NULL, NULL)) >= 0) {
			if (fork() == 0) {
				char line[32] = "";

				for (size_t i = 0; i < sizeof(line) - 1; i++)
					if (read(s, line + i, 1) != 1 ||
					    line[i] == '\n')
						break;
				if (!answer) {
					pause();
					_exit(0);
				}
				if (write(s, "OK 1073741824\n", 14) != 14)
					_exit(0);
				agent_conn(s, sc, log);
				_exit(0);
			}
			close(s);
		}
		_exit(0);
	}
	close(ready[1]);
	cr_assert_eq(read(ready[0], &b, 1), 1, "the fake VM did not start");
	close(ready[0]);
	fakes[nfakes++] = pid;
	return pid;
}

/* What the fake agent received, as "type id arg" lines. */
static char *frames_of(const char *name)
{
	static char buf[4096];
	char path[300];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s.frames", state, name);
	f = fopen(path, "r");
	if (!f)
		return strcpy(buf, "");
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

static bool alive(pid_t pid)
{
	return waitpid(pid, NULL, WNOHANG) == 0;
}

static double secs_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) +
	       (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static const char *in_state(const char *file)
{
	static char buf[4][300];
	static unsigned next;
	char *b = buf[next++ % 4];

	snprintf(b, sizeof(buf[0]), "%s/%s", state, file);
	return b;
}

static void no_escapes(const char *text)
{
	cr_assert_null(strchr(text, 0x1b), "an escape reached the terminal: %s",
		       text);
	cr_assert_null(strchr(text, 0x07), "a BEL reached the terminal");
	cr_assert_null(strchr(text, '\r'), "a carriage return reached it");
	cr_assert_null(strstr(text, "\xc2\x9b"), "a C1 CSI reached it");
}

/* ---- the state directory ---- */

Test(session, a_state_root_open_to_others_is_refused)
{
	const char *argv[] = {hutch_bin(), "ls", NULL};
	struct run_result r;
	char link[320];

	cr_assert_eq(chmod(state, 0755), 0);
	run_cmd(argv, 30, -1, &r);
	cr_assert_eq(r.status, 1, "ls in a 0755 state dir: %d", r.status);
	cr_assert(strstr(r.err, "refusing the state directory"), "%s", r.err);
	run_free(&r);
	cr_assert_eq(chmod(state, 0700), 0);

	/* A symbolic link to a private directory is refused too. */
	snprintf(link, sizeof(link), "%s.link", state);
	cr_assert_eq(symlink(state, link), 0);
	setenv("HUTCH_STATE_DIR", link, 1);
	run_cmd(argv, 30, -1, &r);
	unlink(link);
	setenv("HUTCH_STATE_DIR", state, 1);
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.err, "not a link"), "%s", r.err);
	run_free(&r);

	/* Another user's directory (as root: give it away). */
	if (geteuid() == 0) {
		cr_assert_eq(chown(state, 65534, 65534), 0);
		run_cmd(argv, 30, -1, &r);
		cr_assert_eq(chown(state, 0, 0), 0);
		cr_assert_eq(r.status, 1);
		cr_assert(strstr(r.err, "belongs to another user"), "%s",
			  r.err);
		run_free(&r);
	}
	run_cmd(argv, 30, -1, &r);
	cr_assert_eq(r.status, 0, "a private state dir: %s", r.err);
	run_free(&r);
}

Test(session, ls_reports_by_lock_and_prints_names_as_plain_text)
{
	const char *argv[] = {hutch_bin(), "ls", NULL};
	struct run_result r;
	char line[128];
	pid_t vm = fake_vm("live", SC_SILENT, true, false);
	FILE *f;

	/* A leftover whose pid file names a live stranger: not running. */
	cr_assert_eq(mkdir(in_state("old"), 0700), 0);
	f = fopen(in_state("old/pid"), "w");
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
	cr_assert_eq(mkdir(in_state("evil" ESC "[2J" ESC "]0;x\x07"), 0700), 0);
	run_cmd(argv, 30, -1, &r);
	cr_assert_eq(r.status, 0);
	snprintf(line, sizeof(line), "%-24s %-8ld running", "live", (long)vm);
	cr_assert(strstr(r.out, line), "no '%s' in:\n%s", line, r.out);
	cr_assert(strstr(r.out, "old "), "%s", r.out);
	cr_assert(strstr(r.out, "dead"), "%s", r.out);
	cr_assert(strstr(r.out, "evil?[2J?]0;x?"), "%s", r.out);
	no_escapes(r.out);
	run_free(&r);
}

Test(session, stop_never_signals_a_pid_it_read_from_a_file)
{
	const char *argv[] = {hutch_bin(), "stop", "old", NULL};
	struct run_result r;
	pid_t stranger = fork();
	FILE *f;

	if (stranger == 0) {
		setpgid(0, 0);
		pause();
		_exit(0);
	}
	fakes[nfakes++] = stranger;
	cr_assert_eq(mkdir(in_state("old"), 0700), 0);
	f = fopen(in_state("old/pid"), "w");
	fprintf(f, "%ld\n", (long)stranger);
	fclose(f);
	run_cmd(argv, 60, -1, &r);
	cr_assert_eq(r.status, 0, "%s", r.err);
	run_free(&r);
	cr_assert(alive(stranger), "hutch stop killed an unrelated process");
	cr_assert_neq(access(in_state("old"), F_OK), 0, "directory left");
}

Test(session, stop_escalates_to_sigkill_and_removes_nothing_before)
{
	const char *argv[] = {hutch_bin(), "stop", "stubborn", NULL};
	struct run_result r;
	struct timespec t0;
	pid_t vm = fake_vm("stubborn", SC_SILENT, true, true);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	run_cmd(argv, 80, -1, &r);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_lt(secs_since(&t0), 40);
	run_free(&r);
	cr_assert_not(alive(vm), "the VMM survived hutch stop");
	cr_assert_neq(access(in_state("stubborn"), F_OK), 0);
	/* It was asked nicely first. */
	cr_assert(strstr(frames_of("stubborn"), "48 0 0"), "no SHUTDOWN: %s",
		  frames_of("stubborn"));
}

Test(session, stop_of_a_vmm_that_never_answers_ends)
{
	const char *argv[] = {hutch_bin(), "stop", "hung", NULL};
	struct run_result r;
	struct timespec t0;
	pid_t vm = fake_vm("hung", SC_SILENT, false, true);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	run_cmd(argv, 80, -1, &r);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_lt(secs_since(&t0), 40);
	run_free(&r);
	cr_assert_not(alive(vm));
}

/* ---- exec ---- */

Test(session, exec_timeout_is_enforced_on_the_host)
{
	const char *argv[] = {hutch_bin(), "exec",  "--timeout", "1", "vm",
			      "--",	   "sleep", "100",	 NULL};
	struct run_result r;
	struct timespec t0;

	fake_vm("vm", SC_EXEC_STALL, true, false);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	run_cmd(argv, 60, -1, &r);
	cr_assert_eq(r.status, 124, "status %d: %s", r.status, r.err);
	cr_assert_lt(secs_since(&t0), 30);
	cr_assert(strstr(r.err, "giving up"), "%s", r.err);
	run_free(&r);
}

/* Start `hutch exec vm -- sleep 100`, send it sig (twice: back to back),
 * return its exit status and how long it took after the first signal. */
static int exec_then_signal(int sig, bool twice, double *took)
{
	pid_t pid = fork();
	struct timespec t0;
	int st;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execl(hutch_bin(), hutch_bin(), "exec", "vm", "--", "sleep",
		      "100", (char *)NULL);
		_exit(127);
	}
	/* Until the fake agent has seen the EXEC. */
	for (int i = 0; i < 500 && !strstr(frames_of("vm"), "16 "); i++)
		usleep(10000);
	cr_assert(strstr(frames_of("vm"), "16 "), "no EXEC arrived");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	kill(pid, sig);
	if (twice) {
		usleep(200000);
		kill(pid, sig);
	}
	waitpid(pid, &st, 0);
	*took = secs_since(&t0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

Test(session, exec_forwards_a_signal_then_gives_up_on_a_silent_guest)
{
	double took;
	int status;

	fake_vm("vm", SC_EXEC_STALL, true, false);
	status = exec_then_signal(SIGTERM, false, &took);
	cr_assert_eq(status, 128 + SIGTERM);
	cr_assert_lt(took, 15);
	cr_assert_geq(took, 4, "gave up before the grace period");
	cr_assert(strstr(frames_of("vm"), "23 1 15"),
		  "SIGTERM not forwarded: %s", frames_of("vm"));
}

Test(session, a_second_signal_ends_exec_at_once)
{
	double took;

	fake_vm("vm", SC_EXEC_STALL, true, false);
	cr_assert_eq(exec_then_signal(SIGINT, true, &took), 128 + SIGINT);
	cr_assert_lt(took, 3);
}

Test(session, guest_error_text_reaches_the_terminal_as_plain_text)
{
	const char *argv[] = {hutch_bin(), "exec", "vm", "--", "x", NULL};
	struct run_result r;

	fake_vm("vm", SC_EXEC_ERROR, true, false);
	run_cmd(argv, 60, -1, &r);
	cr_assert_eq(r.status, 127);
	cr_assert(strstr(r.err, "pwned"), "%s", r.err);
	no_escapes(r.err);
	cr_assert_eq(count_lines(r.err), 1, "the guest added lines: %s", r.err);
	run_free(&r);
}

/* ---- cp ---- */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

static char *read_file(const char *path)
{
	static char buf[256];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

/* Nothing in dir but the files named. */
static void only_files(const char *dir, const char *const *names)
{
	char cmd[512], *out;
	struct run_result r;
	const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	unsigned n = 0;

	snprintf(cmd, sizeof(cmd), "ls -A %s", dir);
	run_cmd(argv, 10, -1, &r);
	out = r.out;
	for (; names[n]; n++)
		cr_assert(strstr(out, names[n]), "%s missing: %s", names[n],
			  out);
	cr_assert_eq(count_lines(out), n, "stray files in %s: %s", dir, out);
	run_free(&r);
}

Test(session, cp_download_never_applies_setid_bits)
{
	const char *argv[] = {hutch_bin(), "cp", "vm:/bin/evil",
			      in_state("out/evil"), NULL};
	const char *argv_p[] = {
	    hutch_bin(),	  "cp", "-p", "vm:/bin/evil",
	    in_state("out/kept"), NULL};
	struct run_result r;
	struct stat st;

	fake_vm("vm", SC_GET_SETUID, true, false);
	cr_assert_eq(mkdir(in_state("out"), 0700), 0);
	run_cmd(argv, 60, -1, &r);
	cr_assert_eq(r.status, 0, "%s", r.err);
	run_free(&r);
	cr_assert_eq(stat(in_state("out/evil"), &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0755 & ~022, "mode %o",
		     st.st_mode & 07777);
	cr_assert_str_eq(read_file(in_state("out/evil")), "hello");
	/* cp -p: the user asked for every bit. */
	run_cmd(argv_p, 60, -1, &r);
	cr_assert_eq(r.status, 0, "%s", r.err);
	run_free(&r);
	cr_assert_eq(stat(in_state("out/kept"), &st), 0);
	cr_assert_eq(st.st_mode & 07777, 04755);
}

Test(session, cp_download_beyond_the_announced_size_keeps_dst)
{
	const char *argv[] = {hutch_bin(), "cp", "vm:/f", in_state("out/f"),
			      NULL};
	const char *const left[] = {"f", NULL};
	struct run_result r;

	fake_vm("vm", SC_GET_TOO_BIG, true, false);
	cr_assert_eq(mkdir(in_state("out"), 0700), 0);
	write_file(in_state("out/f"), "original");
	run_cmd(argv, 60, -1, &r);
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.err, "more than the 10 bytes"), "%s", r.err);
	run_free(&r);
	cr_assert_str_eq(read_file(in_state("out/f")), "original");
	only_files(in_state("out"), left);
}

Test(session, cp_download_error_keeps_dst_and_prints_plain_text)
{
	const char *argv[] = {hutch_bin(), "cp", "vm:/f", in_state("out/f"),
			      NULL};
	const char *const left[] = {"f", NULL};
	struct run_result r;

	fake_vm("vm", SC_GET_ERROR, true, false);
	cr_assert_eq(mkdir(in_state("out"), 0700), 0);
	write_file(in_state("out/f"), "original");
	run_cmd(argv, 60, -1, &r);
	cr_assert_eq(r.status, 1);
	no_escapes(r.err);
	cr_assert_eq(count_lines(r.err), 1, "%s", r.err);
	run_free(&r);
	cr_assert_str_eq(read_file(in_state("out/f")), "original");
	only_files(in_state("out"), left);
}

/* ---- run ---- */

Test(session, run_without_an_initramfs_beside_hutch_says_so)
{
	char copy[300], cmd[700];
	struct run_result r;
	const char *argv[] = {copy,	   "run",      "--kernel",
			      "/dev/null", "--rootfs", "/dev/null",
			      "--",	   "true",     NULL};

	/* A copy of hutch with no guest/ directory beside it. */
	cr_assert_eq(mkdir(in_state("bin"), 0700), 0);
	snprintf(copy, sizeof(copy), "%s/bin/hutch", state);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", hutch_bin(), copy);
	cr_assert_eq(system(cmd), 0);
	run_cmd(argv, 60, -1, &r);
	cr_assert_eq(r.status, 1, "%d: %s", r.status, r.err);
	cr_assert(strstr(r.err, "no initramfs.cpio beside hutch"), "%s", r.err);
	run_free(&r);
}

/* ---- help ---- */

/* Every command explains itself, and --help is never taken for a
 * command's own argument or an unknown option. */
Test(session, every_command_has_its_own_help)
{
	static const char *const cmds[] = {"run",   "start", "exec",
					   "shell", "cp",    "stop",
					   "ls",    "boot",  "check-kvm"};

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const char *argv[] = {hutch_bin(), cmds[i], "--help", NULL};
		struct run_result r;
		char want[64];

		run_cmd(argv, 30, -1, &r);
		snprintf(want, sizeof(want), "usage: hutch %s", cmds[i]);
		cr_assert_eq(r.status, 0, "%s --help: %d %s", cmds[i], r.status,
			     r.err);
		cr_assert(strstr(r.out, want), "%s --help: %s", cmds[i], r.out);
		run_free(&r);
	}
}

Test(session, boot_help_lists_the_device_table)
{
	const char *argv[] = {hutch_bin(), "boot", "-h", NULL};
	struct run_result r;

	run_cmd(argv, 30, -1, &r);
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "--drive path=FILE"), "%s", r.out);
	cr_assert(strstr(r.out, "--vsock PATH"), "%s", r.out);
	run_free(&r);
}
