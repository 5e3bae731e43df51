// SPDX-License-Identifier: MIT
/*
 * The shell channel end to end on real KVM: hutch run / start / exec /
 * shell / cp / stop / ls, through virtio-vsock to the guest agent, on the
 * Debian root image.  Each test uses its own named VM.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent_proto.h"
#include "support/run.h"

#define TIMEOUT 600

static char state[] = "/tmp/hutch-agent-XXXXXX";
static char name[64];

static void setup(void)
{
	cr_assert(mkdtemp(state));
	setenv("HUTCH_STATE_DIR", state, 1);
}

static void teardown(void)
{
	char cmd[512];

	if (name[0]) {
		snprintf(cmd, sizeof(cmd), "'%s' stop %s >/dev/null 2>&1",
			 hutch_bin(), name);
		if (system(cmd) != 0)
			fprintf(stderr, "stop %s failed\n", name);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", state);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(agent, .init = setup, .fini = teardown, .timeout = TIMEOUT);

static void start_vm(const char *vm)
{
	snprintf(name, sizeof(name), "%s", vm);
	cr_assert_eq(sh("'%s' start --mem 512 %s >/dev/null", hutch_bin(), vm),
		     0, "hutch start %s failed", vm);
}

#define H hutch_bin()

Test(agent, run_prints_python_output_and_exit_codes_propagate)
{
	char *out = sh_out("'%s' run -- python3 -c 'print(6*7)'", H);

	cr_assert_str_eq(out, "42");
	free(out);
	start_vm("codes");
	cr_assert_eq(sh("'%s' exec codes -- true", H), 0);
	cr_assert_eq(sh("'%s' exec codes -- false", H), 1);
	cr_assert_eq(sh("'%s' exec codes -- sh -c 'exit 42'", H), 42);
	cr_assert_eq(sh("'%s' exec codes -- sh -c 'kill -9 $$'", H), 128 + 9);
	cr_assert_eq(sh("'%s' exec codes -- /no/such/program 2>/dev/null", H),
		     127);
}

Test(agent, binary_stdout_stdin_and_stderr)
{
	char *host, *guest, *err;

	start_vm("streams");
	/* 100 MiB of random bytes out: the guest's checksum of what it sent
	 * (on stderr) equals ours of what arrived. */
	host =
	    sh_out("'%s' exec streams -- sh -c 'head -c 100M /dev/urandom "
		   "> /tmp/r && sha256sum /tmp/r >&2 && cat /tmp/r' 2>%s/sum "
		   "| sha256sum | cut -c1-64",
		   H, state);
	guest = sh_out("cut -c1-64 %s/sum", state);
	cr_assert_eq(strlen(host), 64);
	cr_assert_str_eq(host, guest, "stdout corrupted");
	free(host);
	free(guest);
	/* stdin piped in and closed: 16 MiB through cat, byte for byte.
	 * More than every buffer on the way holds, so the client must read
	 * the echo while it still writes. */
	cr_assert_eq(sh("head -c 16M /dev/urandom > %s/in && '%s' exec streams "
			"-- cat < %s/in > %s/back && cmp %s/in %s/back",
			state, H, state, state, state, state),
		     0);
	/* stdout and stderr apart. */
	host = sh_out("'%s' exec streams -- sh -c 'echo out; echo err >&2' "
		      "2>%s/err",
		      H, state);
	err = sh_out("cat %s/err", state);
	cr_assert_str_eq(host, "out");
	cr_assert_str_eq(err, "err");
	free(host);
	free(err);
}

Test(agent, timeout_and_signals)
{
	char *out;
	pid_t pid;
	int st;

	start_vm("sig");
	cr_assert_eq(
	    sh("'%s' exec --timeout 2 sig -- sleep 100 2>/dev/null", H), 124);
	/* SIGTERM to hutch exec reaches the process in the guest. */
	pid = fork();
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c",
		      "exec \"$0\" exec sig -- sh -c 'trap \"echo got-term; "
		      "exit 3\" TERM; echo ready; sleep 100 & wait' > "
		      "\"$1\"/trap.out",
		      H, state, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 600; i++) {
		out = sh_out("cat %s/trap.out 2>/dev/null", state);
		if (strstr(out, "ready")) {
			free(out);
			break;
		}
		free(out);
		usleep(100000);
	}
	kill(pid, SIGTERM);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 3, "status 0x%x", st);
	out = sh_out("cat %s/trap.out", state);
	cr_assert(strstr(out, "got-term"), "%s", out);
	free(out);
}

/* Ctrl-C at a terminal signals the whole foreground process group: under
 * `hutch run` it must reach the command in the guest (which may handle
 * it), not stop the VM underneath it.  (The background sleep ignores
 * SIGINT, as asynchronous commands of a non-interactive shell do, so it
 * must not hold the command's output open.) */
Test(agent, ctrl_c_under_run_reaches_the_command_not_the_vmm)
{
	char *out;
	pid_t pid;
	int st;

	pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		execl("/bin/sh", "sh", "-c",
		      "exec \"$0\" run -- sh -c 'trap \"echo got-int; exit 7\" "
		      "INT; echo ready; sleep 100 >/dev/null 2>&1 & wait' > "
		      "\"$1\"/int.out",
		      H, state, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 1200; i++) {
		out = sh_out("cat %s/int.out 2>/dev/null", state);
		if (strstr(out, "ready")) {
			free(out);
			break;
		}
		free(out);
		usleep(100000);
	}
	kill(-pid, SIGINT);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	out = sh_out("cat %s/int.out", state);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 7, "status 0x%x: %s", st,
		  out);
	cr_assert(strstr(out, "got-int"), "%s", out);
	free(out);
}

/* The VMM of `hutch start` outlives its caller: it must hold none of the
 * caller's descriptors, and what it creates is its owner's alone, whatever
 * the umask. */
Test(agent, a_started_vm_is_private_and_keeps_no_caller_descriptors)
{
	snprintf(name, sizeof(name), "priv");
	cr_assert_eq(sh("umask 000; exec 7>%s/leak; '%s' start --mem 512 priv "
			">/dev/null",
			state, H),
		     0);
	cr_assert_eq(
	    sh("! ls -l /proc/$(cat %s/priv/pid)/fd | grep -q leak", state), 0,
	    "the VMM holds its caller's descriptor");
	cr_assert_eq(sh("cd %s/priv && test \"$(stat -c %%a . vsock.sock "
			"overlay.cow console.log vmm.log lock pid | sort -u)\" "
			"= \"600\n700\" || { stat -c '%%a %%n' . *; exit 1; }",
			state),
		     0);
	cr_assert_eq(sh("'%s' exec priv -- true", H), 0);
}

Test(agent, fifty_concurrent_execs)
{
	char *out;

	start_vm("many");
	out = sh_out("for i in $(seq 1 50); do '%s' exec many -- sh -c "
		     "\"echo n\\$((40 + 2))-$i\" > %s/c$i & done; wait; cat "
		     "%s/c* | grep -c '^n42-'",
		     H, state, state);
	cr_assert_str_eq(out, "50");
	free(out);
}

Test(agent, cp_round_trips_50_mib_with_mode)
{
	start_vm("files");
	cr_assert_eq(sh("head -c 50M /dev/urandom > %s/f && chmod 751 %s/f && "
			"'%s' cp %s/f files:/root/f && '%s' cp files:/root/f "
			"%s/g && cmp %s/f %s/g",
			state, state, H, state, H, state, state, state),
		     0);
	cr_assert_eq(sh("test \"$(stat -c %%a %s/g)\" = 751", state), 0);
	cr_assert_eq(sh("test \"$('%s' exec files -- stat -c %%a /root/f)\" = "
			"751",
			H),
		     0);
	cr_assert_neq(sh("'%s' cp files:/no/such %s/x 2>/dev/null", H, state),
		      0);
}

Test(agent, shell_in_tmux_sees_prompt_and_window_size)
{
	char *pane;
	bool ok = false;

	start_vm("tty");
	cr_assert_eq(sh("tmux -L hutch-test new-session -d -s t -x 100 -y 30 "
			"\"HUTCH_STATE_DIR=%s '%s' shell tty\"",
			state, H),
		     0);
	for (int i = 0; i < 300 && !ok; i++) {
		usleep(100000);
		pane = sh_out("tmux -L hutch-test capture-pane -p -t t");
		ok = strstr(pane, "#") != NULL;
		free(pane);
	}
	cr_assert(ok, "no prompt");
	sh("tmux -L hutch-test send-keys -t t 'stty size' Enter");
	usleep(1500000);
	pane = sh_out("tmux -L hutch-test capture-pane -p -t t");
	cr_assert(strstr(pane, "30 100"), "%s", pane);
	free(pane);
	sh("tmux -L hutch-test resize-window -t t -x 120 -y 40");
	usleep(1000000);
	sh("tmux -L hutch-test send-keys -t t 'stty size' Enter");
	usleep(1500000);
	pane = sh_out("tmux -L hutch-test capture-pane -p -t t");
	sh("tmux -L hutch-test kill-server");
	cr_assert(strstr(pane, "40 120"), "%s", pane);
	free(pane);
}

Test(agent, fork_bomb_and_oom_leave_the_agent_answering)
{
	char *out;

	start_vm("hostile");
	sh("'%s' exec --timeout 10 hostile -- sh -c 'b() { b | b & }; b' "
	   ">/dev/null 2>&1",
	   H);
	out = sh_out("'%s' exec hostile -- echo alive-after-forkbomb", H);
	cr_assert_str_eq(out, "alive-after-forkbomb");
	free(out);
	sh("'%s' exec --timeout 60 hostile -- python3 -c 'a = []\nwhile "
	   "True: a.append(bytearray(10**7))' >/dev/null 2>&1",
	   H);
	out = sh_out("'%s' exec hostile -- echo alive-after-oom", H);
	cr_assert_str_eq(out, "alive-after-oom");
	free(out);
}

static int vsock_agent(const char *vm)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char line[64];
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s/vsock.sock", state,
		 vm);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(write(fd, "CONNECT 1024\n", 13), 13);
	for (size_t n = 0; n < sizeof(line); n++) {
		cr_assert_eq(read(fd, line + n, 1), 1);
		if (line[n] == '\n')
			break;
	}
	cr_assert_eq(strncmp(line, "OK ", 3), 0);
	return fd;
}

static void expect_error_frame(int fd)
{
	uint8_t hdr[AGENT_HDR_LEN];
	struct agent_hdr h;

	char payload[512];

	cr_assert_eq(read(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	agent_hdr_decode(&h, hdr);
	cr_assert_eq(h.type, AGENT_ERROR, "type %u", h.type);
	cr_assert(h.len >= 8 && h.len <= sizeof(payload), "len %u", h.len);
	for (size_t got = 0; got < h.len;) {
		ssize_t n = read(fd, payload + got, h.len - got);

		cr_assert_gt(n, 0);
		got += (size_t)n;
	}
}

Test(agent, malformed_frames_get_errors)
{
	uint8_t hdr[AGENT_HDR_LEN];
	struct agent_hdr h = {.len = 0x7fffffff, .type = AGENT_PING};
	int fd;
	char *out;

	start_vm("frames");
	/* Oversized: an ERROR, then the connection ends. */
	fd = vsock_agent("frames");
	agent_hdr_encode(hdr, &h);
	cr_assert_eq(write(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	expect_error_frame(fd);
	close(fd);
	/* Unknown type, and an EXEC whose payload is cut short. */
	fd = vsock_agent("frames");
	h = (struct agent_hdr){.len = 0, .type = 999, .id = 1};
	agent_hdr_encode(hdr, &h);
	cr_assert_eq(write(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	expect_error_frame(fd);
	h = (struct agent_hdr){.len = 3, .type = AGENT_EXEC, .id = 2};
	agent_hdr_encode(hdr, &h);
	cr_assert_eq(write(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	cr_assert_eq(write(fd, "abc", 3), 3);
	expect_error_frame(fd);
	close(fd);
	out = sh_out("'%s' exec frames -- echo still-serving", H);
	cr_assert_str_eq(out, "still-serving");
	free(out);
}

Test(agent, guest_reaches_host_listener_on_path_port)
{
	char *out;

	start_vm("tohost");
	/* A host listener on <vsock path>_5000, answering one line. */
	cr_assert_eq(
	    sh("python3 -c 'import socket,sys\ns=socket.socket(socket."
	       "AF_UNIX)\ns.bind(sys.argv[1])\ns.listen()\nc,_=s.accept()"
	       "\nd=c.recv(100)\nc.sendall(b\"host-got-\"+d)\nc.close()' "
	       "%s/tohost/vsock.sock_5000 & for i in $(seq 300); do test "
	       "-S %s/tohost/vsock.sock_5000 && break; sleep 0.1; done",
	       state, state),
	    0);
	out = sh_out("'%s' exec tohost -- python3 -c 'import socket\ns=socket."
		     "socket(socket.AF_VSOCK,socket.SOCK_STREAM)\ns.connect((2,"
		     "5000))\ns.sendall(b\"hi\")\nprint(s.recv(100).decode())'",
		     H);
	cr_assert_str_eq(out, "host-got-hi");
	free(out);
}

Test(agent, stopping_or_killing_leaves_nothing_behind)
{
	char *pid, *out;

	start_vm("gone");
	pid = sh_out("cat %s/gone/pid", state);
	/* SIGTERM to the VMM: it exits and removes its socket. */
	cr_assert_eq(sh("kill -TERM %s; for i in $(seq 100); do kill -0 %s "
			"2>/dev/null || break; sleep 0.1; done; ! kill -0 %s "
			"2>/dev/null",
			pid, pid, pid),
		     0);
	cr_assert_neq(sh("test -e %s/gone/vsock.sock", state), 0,
		      "stale socket");
	free(pid);
	out = sh_out("'%s' ls", H);
	cr_assert(strstr(out, "dead"), "%s", out);
	free(out);
	cr_assert_eq(sh("'%s' stop gone", H), 0);
	cr_assert_neq(sh("test -e %s/gone", state), 0);
	/* hutch run killed -9: its VM goes with it. */
	cr_assert_eq(sh("'%s' run -- sleep 600 & p=$!; sleep 5; v=$(cat "
			"%s/run-*/pid); kill -9 $p; sleep 2; test -n \"$v\" && "
			"! kill -0 $v 2>/dev/null",
			H, state),
		     0);
	name[0] = 0;
}
